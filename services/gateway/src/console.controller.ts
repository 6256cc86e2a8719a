import { Controller, Get, Param, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { existsSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ZiggieError } from '@ziggie/contracts';
import { ApiDoc, Public, ValidQuery } from '@ziggie/platform';
import { z } from 'zod';

/**
 * Where `npm run build` puts the console (console/dist at the repository root; the image copies it
 * to the same place relative to the gateway). dist/ and src/ both sit one level below the package.
 */
export const CONSOLE_DIR = join(__dirname, '..', '..', '..', 'console', 'dist');

/**
 * The console's pages: scripts and styles only from this origin, no inline script or style, and
 * no other origin for anything (images from tool output arrive as data: URLs).
 */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; " +
  "manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** The client-side screens: each answers the same page, which then shows the screen. */
const SCREENS = new Set(['tasks', 'agents', 'workspaces', 'mcp', 'pools', 'policies', 'audit']);

const TYPES: Record<string, string> = {
  '.js': 'application/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

const filter = z.string().max(500).optional();
/**
 * A screen's address carries its filters and page, which the page reads itself (deep links); the
 * server only hands out the page. Any other parameter (the list's `cursor`, say) is the page's own.
 */
const ScreenQuery = z
  .object({
    status: filter.describe('Tasks and agents: status filter'),
    workspace: filter.describe('Tasks and agents: workspace filter'),
    priority: filter.describe('Tasks: priority filter'),
    blueprint: filter.describe('Tasks: blueprint filter'),
    capability: filter.describe('Agents: capability filter'),
    level: filter.describe('Agents: level filter'),
  })
  .catchall(z.unknown());

/** Text files go out gzipped to clients that accept it (every browser): a third of the bytes. */
const COMPRESSIBLE = new Set(['.js', '.css', '.svg']);

/** Hashed names only (Vite's output): a name that could walk out of the folder never matches. */
const ASSET_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

function secure(res: FastifyReply): void {
  res.header('Content-Security-Policy', CONSOLE_CSP);
  res.header('X-Content-Type-Options', 'nosniff');
  // The page's address never leaves it (the sign-in fragment is not sent anyway).
  res.header('Referrer-Policy', 'no-referrer');
}

/** Whether Accept-Encoding allows gzip (named or `*`, with a weight above zero). */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let gzip: number | undefined;
  let any: number | undefined;
  for (const part of header.split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    const weight = q === undefined ? 1 : Number(q);
    if (name.trim() === 'gzip') gzip = weight;
    else if (name.trim() === '*') any = weight;
  }
  return (gzip ?? any ?? 0) > 0;
}

/** The web console: the built single-page app, served from the API's origin. */
@Public()
@Controller('console')
export class ConsoleController {
  private readonly files = new Map<string, Buffer>();
  private readonly gzipped = new Map<string, Buffer>();

  private read(path: string): Buffer {
    let body = this.files.get(path);
    if (!body) {
      if (!existsSync(path)) throw new ZiggieError('NOT_FOUND', 'the console is not built: run `npm run build`');
      body = readFileSync(path);
      this.files.set(path, body);
    }
    return body;
  }

  private page(res: FastifyReply): void {
    secure(res);
    // The page must be fetched fresh so a new build's asset names are picked up.
    res.header('Cache-Control', 'no-cache');
    res.type('text/html; charset=utf-8').send(this.read(join(CONSOLE_DIR, 'index.html')));
  }

  @Get()
  @ApiDoc({ summary: 'The web console (sign in with /console/#token=<jwt>)', tag: 'operations', produces: 'text/html' })
  index(@ValidQuery(ScreenQuery) _q: unknown, @Req() req: FastifyRequest, @Res() res: FastifyReply): void {
    // Relative links of the page resolve under /console/; a redirect keeps the URL fragment.
    const search = req.url.indexOf('?');
    if (!(search >= 0 ? req.url.slice(0, search) : req.url).endsWith('/')) {
      res.redirect(`/console/${search >= 0 ? req.url.slice(search) : ''}`, 301);
      return;
    }
    this.page(res);
  }

  @Get('assets/:file')
  @ApiDoc({ summary: 'Files of the web console', tag: 'operations', produces: 'application/octet-stream' })
  asset(@Param('file') file: string, @Req() req: FastifyRequest, @Res() res: FastifyReply): void {
    const ext = extname(file);
    const type = TYPES[ext];
    if (!ASSET_NAME.test(file) || file.startsWith('.') || !type) throw new ZiggieError('NOT_FOUND', `no such file: ${file}`);
    const path = join(CONSOLE_DIR, 'assets', file);
    let body = this.read(path);
    secure(res);
    // Names carry a content hash: a changed file gets a new name.
    res.header('Cache-Control', 'public, max-age=31536000, immutable');
    if (COMPRESSIBLE.has(ext)) {
      res.header('Vary', 'Accept-Encoding');
      if (acceptsGzip(req.headers['accept-encoding'])) {
        let gz = this.gzipped.get(path);
        if (!gz) {
          gz = gzipSync(body, { level: 9 });
          this.gzipped.set(path, gz);
        }
        body = gz;
        res.header('Content-Encoding', 'gzip');
      }
    }
    res.type(type).send(body);
  }

  @Get(':screen')
  @ApiDoc({ summary: 'A screen of the web console (tasks, agents, workspaces, mcp)', tag: 'operations', produces: 'text/html' })
  screen(@Param('screen') screen: string, @ValidQuery(ScreenQuery) _q: unknown, @Res() res: FastifyReply): void {
    if (!SCREENS.has(screen)) throw new ZiggieError('NOT_FOUND', `no such screen: ${screen}`);
    this.page(res);
  }

  @Get(':screen/:id')
  @ApiDoc({ summary: 'One item on a screen of the web console (a task, an agent, a workspace)', tag: 'operations', produces: 'text/html' })
  item(@Param('screen') screen: string, @Param('id') id: string, @ValidQuery(ScreenQuery) _q: unknown, @Res() res: FastifyReply): void {
    if (!SCREENS.has(screen) || !ASSET_NAME.test(id)) throw new ZiggieError('NOT_FOUND', `no such screen: ${screen}/${id}`);
    this.page(res);
  }
}
