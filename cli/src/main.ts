/** The `ziggie` command: up, token, demo [blueprint]. */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import pc from 'picocolors';
import { ApiError, UnreachableError } from './api';
import { mintDevToken } from './auth';
import { runBlueprintDemo, runDemo } from './demo';
import { CliError, UsageError } from './errors';
import {
  applyStackEvent,
  describeStackEvent,
  renderStackBlock,
  renderStackSummary,
  stackViewInit,
} from './progress';
import { readJwtSecret } from './secret';
import { describeObservability, startObservability, type ObservabilityHandle } from './observability';
import { POSTGRES } from './postgres';
import { artifactsDir, NATS, StartOrder, startStack, type StackHandle, type StackProgressEvent } from './stack';
import { LiveBlock, detectOutput, terminalWidth } from './terminal';
import { maxTtlSeconds, parseTokenArgs, type RawTokenArgs } from './token-args';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const NO_SECRET = 'no JWT secret found: start the stack once with `npm start`, or set ZIGGIE_JWT_SECRET';

function version(): string {
  try {
    return (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

function println(line = ''): void {
  process.stdout.write(`${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// up

interface UpOptions {
  dataDir: string;
  demo: boolean;
  logLevel: string;
  withObservability?: boolean;
}

async function up(o: UpOptions): Promise<number> {
  const output = detectOutput();
  const c = pc.createColors(output.color);
  const t0 = Date.now();
  const dataDir = resolve(o.dataDir);
  let view = stackViewInit([NATS, ...(process.env.DATABASE_URL?.trim() ? [] : [POSTGRES]), ...StartOrder], t0);
  let block: LiveBlock | undefined;

  const onProgress = (ev: StackProgressEvent): void => {
    view = applyStackEvent(view, ev, Date.now());
    if (block) block.draw();
    else if (ev.kind !== 'stopping') println(`  ${describeStackEvent(ev)}`);
  };

  const startAbort = new AbortController();
  const demoAbort = new AbortController();
  let handle: StackHandle | undefined;
  let shuttingDown = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (shuttingDown) {
      // A second Ctrl-C: the exit hook in stack.ts still sends SIGTERM to what is left.
      println(c.yellow(`${signal} again: exiting without waiting`));
      process.exit(130);
    }
    shuttingDown = true;
    println(c.dim(`\n${signal}: stopping the stack (Ctrl-C again to force)`));
    startAbort.abort();
    demoAbort.abort();
    if (handle) void handle.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  println(c.bold(`Starting Ziggie Command Center`) + c.dim(`  (data: ${dataDir})`));
  if (output.interactive) {
    block = new LiveBlock(process.stdout, (now) =>
      renderStackBlock(view, now, { color: output.color, width: terminalWidth(process.stdout) }),
    ).start();
  }
  try {
    handle = await startStack({ dataDir, logLevel: o.logLevel, onProgress, signal: startAbort.signal });
  } catch (err) {
    if (shuttingDown) {
      block?.stop();
      println('Stopped.');
      return 0;
    }
    throw err;
  } finally {
    block?.stop();
    block = undefined;
  }

  if (shuttingDown) {
    // The signal came after the last point where start-up checks for it.
    await handle.stop();
    println('Stopped.');
    return 0;
  }

  println(renderStackSummary(handle, { color: output.color, elapsedMs: Date.now() - t0 }));
  for (const notice of handle.notices) println(c.yellow(notice));

  let observability: ObservabilityHandle | undefined;
  if (o.withObservability) {
    try {
      observability = await startObservability({ dataDir, ports: handle.ports, onExit: (_name, why) => println(c.yellow(why)) });
      for (const line of describeObservability(observability)) println(line);
      println();
    } catch (err) {
      // The stack is useful without them: say why and keep it running.
      println(c.yellow(`observability not started: ${errorMessage(err)}`));
    }
  }

  // A child that dies takes the stack down; the demo must not wait out its time bound for it.
  void handle.waitForExit().then(() => demoAbort.abort());
  if (o.demo) {
    println(c.bold('Demo'));
    try {
      await runDemo({
        gatewayUrl: handle.gatewayUrl,
        token: handle.adminToken,
        out: process.stdout,
        interactive: output.interactive,
        color: output.color,
        signal: demoAbort.signal,
      });
    } catch (err) {
      // The stack stays up: a failed demo is something to investigate with the stack running.
      if (!demoAbort.signal.aborted) println(c.red(`demo failed: ${errorMessage(err)}`));
    }
    println();
  }
  if (!demoAbort.signal.aborted) println(c.bold('Command center is running. Ctrl-C to stop.'));

  const code = await handle.waitForExit();
  await observability?.stop();
  const failure = handle.failure;
  if (code !== 0 && failure) {
    const where = failure.logFile ? `Last lines of ${failure.logFile}:` : 'Its output went to the terminal.';
    const why = failure.signal ? `was killed by ${failure.signal}` : `exited with code ${failure.code}`;
    println(c.red(`\n${failure.name} ${why} unexpectedly; the rest of the stack was stopped.`));
    println(where);
    println(failure.logTail.replace(/^/gm, '    '));
    return 1;
  }
  println('Stopped.');
  return code;
}

// ---------------------------------------------------------------------------------------------
// token and demo

async function secretOrFail(dataDir: string): Promise<string> {
  const found = await readJwtSecret(resolve(dataDir));
  if (!found) throw new CliError(NO_SECRET);
  return found.secret;
}

async function token(o: RawTokenArgs & { dataDir: string }): Promise<void> {
  const req = parseTokenArgs(o, maxTtlSeconds());
  println(mintDevToken(req, await secretOrFail(o.dataDir)));
}

interface DemoOptions {
  url: string;
  token?: string;
  dataDir: string;
  input: string[];
  inputs?: string;
  timeout?: string;
}

async function demo(blueprint: string | undefined, o: DemoOptions): Promise<number> {
  if (!blueprint && (o.input.length > 0 || o.inputs !== undefined)) {
    throw new UsageError('--input and --inputs are for a blueprint: ziggie demo <blueprint> --input key=value');
  }
  let timeoutMs: number | undefined;
  if (o.timeout !== undefined) {
    const seconds = Number(o.timeout);
    if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`--timeout must be a positive number of seconds, got "${o.timeout}"`);
    timeoutMs = seconds * 1000;
  }
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new UsageError(`--url must be an http(s) URL, got "${o.url}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--url must be an http(s) URL, got "${o.url}"`);
  }
  const bearer =
    o.token?.trim() ||
    process.env.ZIGGIE_TOKEN?.trim() ||
    mintDevToken(
      { subject: 'demo@local', roles: ['admin'], workspaces: ['*'], ttlSeconds: 900 },
      await secretOrFail(o.dataDir),
    );
  const output = detectOutput();
  // Without this, Ctrl-C would kill the process before the live display restores the cursor.
  process.once('SIGINT', () => process.exit(130));
  const common = {
    gatewayUrl: url.toString().replace(/\/+$/, ''),
    token: bearer,
    out: process.stdout,
    interactive: output.interactive,
    color: output.color,
    timeoutMs,
  };
  const task = blueprint
    ? await runBlueprintDemo({ ...common, blueprint, inputArgs: o.input, inputsJson: o.inputs, artifactsDir: artifactsDir(o.dataDir) })
    : await runDemo(common);
  return task.status === 'succeeded' ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------

function errorMessage(err: unknown): string {
  if (err instanceof ApiError) return `${err.code}: ${err.detail}`;
  if (err instanceof Error) return err.message;
  return String(err);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function buildProgram(): Command {
  const program = new Command()
    .name('ziggie')
    .description('Ziggie Command Center: start the local stack, mint development tokens, run the demo')
    .version(version())
    .showHelpAfterError();

  program
    .command('up')
    .description('start nats-server and all services on loopback, print the URLs and an admin token, run the demo')
    .option('--data-dir <dir>', 'where secrets, NATS data, service data and logs live', '.ziggie')
    .option('--no-demo', 'do not run the demo task after start-up')
    .addOption(new Option('--log-level <level>', 'log level of the services').choices(LOG_LEVELS).default('info'))
    .option('--with-observability', 'also start Prometheus (with the alert rules) and Alertmanager on loopback')
    .action(async (o: UpOptions) => {
      process.exitCode = await up(o);
    });

  program
    .command('token')
    .description('print a development JWT signed with the local secret')
    .option('--role <role>', 'admin | l1 | l2l3 | bmad')
    .option('--workspace <id>', 'a workspace the token may act in, or "*" for all (repeatable)', collect, [])
    .option('--ttl <seconds>', 'lifetime in seconds (at most 86400, or $JWT_MAX_TOKEN_LIFETIME_SECONDS)', '3600')
    .option('--subject <name>', 'the token subject (default <role>@local)')
    .option('--data-dir <dir>', 'data directory holding jwt-secret', '.ziggie')
    .action(async (o: RawTokenArgs & { dataDir: string }) => {
      await token(o);
    });

  program
    .command('demo')
    .argument('[blueprint]', 'a blueprint to run instead: character-variations, comic-strip, or name@version')
    .description('submit the demo task (or a blueprint with inputs) and follow its waves live')
    .option('--url <url>', 'gateway URL', 'http://127.0.0.1:4000')
    .option('--token <jwt>', 'bearer token (default: $ZIGGIE_TOKEN, else minted from the data directory secret)')
    .option('--data-dir <dir>', 'data directory holding jwt-secret (and artifacts/ of the local stack)', '.ziggie')
    .option('--input <key=value>', 'a blueprint input, typed by its input schema (repeatable)', collect, [])
    .option('--inputs <json>', 'blueprint inputs as a JSON object (--input values win)')
    .option('--timeout <seconds>', 'give up following the task after this long (default 120, 600 for a blueprint)')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  ziggie demo\n' +
        '  ziggie demo character-variations --input character="a cat warrior" --input variations=6\n' +
        '  ziggie demo comic-strip@1.0.0 --inputs \'{"prompt":"A robot learns to paint","panels":4}\'',
    )
    .action(async (blueprint: string | undefined, o: DemoOptions) => {
      process.exitCode = await demo(blueprint, o);
    });

  return program;
}

export async function main(argv: string[] = process.argv): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    const c = pc.createColors(pc.isColorSupported && Boolean(process.stderr.isTTY));
    if (err instanceof CliError || err instanceof ApiError || err instanceof UnreachableError) {
      process.stderr.write(`${c.red('error:')} ${errorMessage(err)}\n`);
    } else {
      process.stderr.write(`${c.red('error:')} ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    return err instanceof CliError ? err.exitCode : 1;
  }
}

/** Entry point of cli/bin/ziggie.js and `node cli/dist/main.js`. */
export function run(): void {
  // Exit explicitly: idle keep-alive sockets of fetch() must not hold a finished command open.
  void main().then((code) => process.exit(code));
}

if (require.main === module) run();
