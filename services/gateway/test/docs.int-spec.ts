import 'reflect-metadata';
import { INestApplication, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { existsSync } from 'node:fs';
import { Browser, chromium } from 'playwright-core';
import { ProblemFilter, createHttpApplication } from '@ziggie/platform';
import { gatewayOpenApi } from '../src/api';
import { OPENAPI_DOCUMENT, OpenApiController } from '../src/openapi.controller';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/**
 * The docs page in real headless Chromium (Debian's package): Swagger UI loads from the gateway
 * itself (no CDN), under its strict Content-Security-Policy, and renders every operation of the
 * live OpenAPI document.
 */
describe('GET /docs in headless Chromium', () => {
  let app: INestApplication;
  let base: string;
  let browser: Browser;
  const document = gatewayOpenApi() as { paths: Record<string, Record<string, unknown>> };

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: run scripts/install-deps.sh chromium`);
    @Module({ controllers: [OpenApiController], providers: [{ provide: OPENAPI_DOCUMENT, useValue: document }, { provide: APP_FILTER, useClass: ProblemFilter }] })
    class DocsModule {}
    app = await createHttpApplication(DocsModule);
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Playwright gives it a fresh temporary profile; these keep it from reaching for the network.
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('renders every operation of the document, loading only same-origin files, without CSP violations or script errors', async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    const foreign: string[] = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('request', (r) => {
      if (!r.url().startsWith(base) && !r.url().startsWith('data:')) foreign.push(r.url());
    });
    const response = await page.goto(`${base}/docs`, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
    await page.waitForSelector('.opblock', { timeout: 30_000 });

    const rendered = await page.$$eval('.opblock-summary', (nodes) =>
      nodes.map((n) => `${n.querySelector('.opblock-summary-method')?.textContent?.trim()} ${n.querySelector('.opblock-summary-path')?.getAttribute('data-path')}`),
    );
    const documented = Object.entries(document.paths).flatMap(([path, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`));
    expect(rendered.sort()).toEqual(documented.sort());
    expect(await page.textContent('.info .title')).toContain('Ziggie Command Center API');
    expect(foreign).toEqual([]);
    expect(problems).toEqual([]);
    await page.close();
  }, 60_000);

  it('serves only the listed Swagger UI files', async () => {
    expect((await fetch(`${base}/docs/swagger-ui.css`)).status).toBe(200);
    const missing = await fetch(`${base}/docs/package.json`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toContain('application/problem+json');
    expect((await fetch(`${base}/docs/..%2Fpackage.json`)).status).toBe(404);
  });
});
