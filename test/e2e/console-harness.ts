import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Browser, BrowserContext, chromium, Page } from 'playwright-core';
import { signDevToken } from '@ziggie/platform';
import { allocateFreePorts, startStack, StackHandle } from '../../cli/src/stack';
import { consoleUrl } from '../../cli/src/progress';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
/** The README shows these: every screen the runs visit, as it looked. */
export const SCREENSHOTS = resolve(__dirname, '..', '..', 'docs', 'console', 'screenshots');

/** What a console spec uses: the stack and browser are there from its first test on. */
export interface ConsoleHarness {
  readonly stack: StackHandle;
  readonly browser: Browser;
  /** A fresh browser context whose pages report every error, CSP violation and foreign request. */
  newContext(): Promise<BrowserContext>;
  /** A page signed in with `bearer` (the admin token unless given), at `screen` (a path under /console/). */
  signedIn(screen?: string, bearer?: string): Promise<{ context: BrowserContext; page: Page }>;
  /** A development token with these roles and workspaces. */
  token(roles: string[], workspaces?: string[]): string;
  /** A call to the API with the admin token. */
  api(path: string, init?: RequestInit): Promise<Response>;
  /** Saves the page under docs/console/screenshots/<name>.png. */
  shot(page: Page, name: string): Promise<Buffer>;
  /** API answers of 400 and up the current test provokes on purpose, as `STATUS METHOD /path`. */
  expectApiErrors(errors: string[]): void;
  /** A measured figure, printed after the spec's last test. */
  figure(line: string): void;
}

/**
 * Registers the hooks of a console spec in Debian's headless Chromium against a real local stack
 * with the operator's default rate limits. After each test it fails on any script error, console
 * error, CSP violation, request to another origin, or API error the test did not expect.
 */
export function consoleHarness(): ConsoleHarness {
  let dataDir: string | undefined;
  let stack: StackHandle | undefined;
  let browser: Browser | undefined;
  const problems: string[] = [];
  const foreign: string[] = [];
  const apiErrors: string[] = [];
  let expectedApiErrors: string[] = [];
  const figures: string[] = [];

  const ready = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`the console harness has no ${what} yet: use it inside a test`);
    return value;
  };

  function watch(page: Page, gatewayUrl: string): void {
    page.on('pageerror', (e) => problems.push(`pageerror on ${page.url()}: ${e.message}`));
    page.on('console', (m) => {
      // Chromium logs every HTTP error as a console error; those are checked as apiErrors instead.
      if (m.type() === 'error' && !(m.text().startsWith('Failed to load resource') && m.location().url.startsWith(`${gatewayUrl}/v1/`))) {
        problems.push(`console error on ${page.url()}: ${m.text()} (${m.location().url})`);
      }
    });
    page.on('response', (r) => {
      if (r.status() >= 400) apiErrors.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
    });
    page.on('request', (r) => {
      if (!r.url().startsWith(gatewayUrl) && !r.url().startsWith('data:')) foreign.push(r.url());
    });
  }

  const harness: ConsoleHarness = {
    get stack() {
      return ready(stack, 'stack');
    },
    get browser() {
      return ready(browser, 'browser');
    },
    async newContext() {
      const context = await harness.browser.newContext({ viewport: { width: 1400, height: 900 } });
      // Playwright injects this over the DevTools protocol, not as an inline script, so the CSP allows it.
      await context.addInitScript({
        content: "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));",
      });
      const gatewayUrl = harness.stack.gatewayUrl;
      context.on('page', (page) => watch(page, gatewayUrl));
      return context;
    },
    async signedIn(screen = '', bearer = harness.stack.adminToken) {
      const context = await harness.newContext();
      const page = await context.newPage();
      await page.goto(consoleUrl(harness.stack.gatewayUrl, bearer).replace('/console/#', `/console/${screen}#`));
      return { context, page };
    },
    token: (roles, workspaces = ['*']) =>
      signDevToken(
        { subject: `${roles.join('+')}@console`, roles, workspaces, ttlSeconds: 600 },
        { secret: harness.stack.jwtSecret, issuer: 'ziggie-local', audience: 'ziggie-api' },
      ),
    api: (path, init = {}) =>
      fetch(`${harness.stack.gatewayUrl}${path}`, {
        ...init,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${harness.stack.adminToken}`, ...(init.headers ?? {}) },
      }),
    shot: (page, name) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true }),
    expectApiErrors(errors) {
      expectedApiErrors = errors;
    },
    figure(line) {
      figures.push(line);
    },
  };

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: run scripts/install-deps.sh chromium`);
    if (!existsSync(resolve(__dirname, '..', '..', 'console', 'dist', 'index.html'))) throw new Error('the console is not built: run `npm run build`');
    mkdirSync(SCREENSHOTS, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), 'ziggie-console-e2e-'));
    // The operator's default rate limits: the console must live within them.
    stack = await startStack({ dataDir, ports: await allocateFreePorts(), logLevel: 'warn' });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 180_000);

  afterAll(async () => {
    if (figures.length > 0) console.log(figures.join('\n'));
    await browser?.close();
    await stack?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  afterEach(() => {
    const seen = { problems: [...problems], foreign: [...foreign], apiErrors: [...apiErrors].sort() };
    problems.length = 0;
    foreign.length = 0;
    apiErrors.length = 0;
    const expected = [...expectedApiErrors].sort();
    expectedApiErrors = [];
    expect(seen).toEqual({ problems: [], foreign: [], apiErrors: expected });
  });

  return harness;
}
