import { Controller, Get, Header, Inject, Param, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ZiggieError } from '@ziggie/contracts';
import { ApiDoc, Public } from '@ziggie/platform';

export const OPENAPI_DOCUMENT = Symbol('OPENAPI_DOCUMENT');

/** The Swagger UI files the docs page loads; nothing else of the package is served. */
const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'application/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
  'favicon-16x16.png': 'image/png',
};

// Relative URLs, so the page also works behind a proxy that mounts the API under a prefix.
const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Ziggie Command Center API</title>
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png">
  <link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script src="docs/init.js"></script>
</body>
</html>
`;

const INIT = `window.ui = SwaggerUIBundle({ url: 'openapi.json', dom_id: '#swagger-ui', deepLinking: true, persistAuthorization: false });\n`;

/** Pages of the docs: scripts only from this origin, no inline script (Swagger UI needs inline styles). */
const DOCS_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

function swaggerUiDir(): string {
  return join(require.resolve('swagger-ui-dist/package.json'), '..');
}

/** The OpenAPI 3.1 document of the running gateway and a browsable docs page (Swagger UI, served locally). */
@Public()
@Controller()
export class OpenApiController {
  private readonly assets = new Map<string, Buffer>();

  constructor(@Inject(OPENAPI_DOCUMENT) private readonly document: Record<string, unknown>) {}

  @Get('openapi.json')
  @ApiDoc({ summary: 'This OpenAPI 3.1 document', tag: 'operations' })
  openapi(): Record<string, unknown> {
    return this.document;
  }

  @Get('docs')
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Content-Security-Policy', DOCS_CSP)
  @ApiDoc({ summary: 'The API reference, browsable', tag: 'operations', produces: 'text/html' })
  page(): string {
    return PAGE;
  }

  @Get('docs/:asset')
  @ApiDoc({ summary: 'Files of the docs page', tag: 'operations', produces: 'application/octet-stream' })
  asset(@Param('asset') asset: string, @Res() res: FastifyReply): void {
    res.header('Content-Security-Policy', DOCS_CSP);
    res.header('Cache-Control', 'public, max-age=3600');
    if (asset === 'init.js') {
      res.type('application/javascript; charset=utf-8').send(INIT);
      return;
    }
    const type = Object.prototype.hasOwnProperty.call(ASSETS, asset) ? ASSETS[asset] : undefined;
    if (!type) throw new ZiggieError('NOT_FOUND', `no such file: ${asset}`);
    let body = this.assets.get(asset);
    if (!body) {
      body = readFileSync(join(swaggerUiDir(), asset));
      this.assets.set(asset, body);
    }
    res.type(type).send(body);
  }
}
