/**
 * The contract, served by the API itself:
 *
 *   GET /openapi.json    the OpenAPI 3.1 document (api/openapi.ts), built from the running app's routes
 *   GET /docs            a browsable reference (Swagger UI from the swagger-ui-dist package, served from here:
 *   GET /docs/:asset     no CDN, so it works offline and behind a strict CSP)
 *
 * Public: the document describes the API, it holds no data.
 */
import type { Express, Response, Router } from 'express';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { openApiDocument } from './openapi';
import { ApiProblem } from './problem';
import { declareRoutes, PUBLIC } from './route-declarations';

/** Our own start-up script (no inline code under the CSP below): render /openapi.json; no online validator badge. */
const INIT_SCRIPT = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#reference', deepLinking: true, defaultModelsExpandDepth: 0, validatorUrl: null });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>meterloop API reference</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="reference"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
`;

const SWAGGER_UI_FILES = { 'swagger-ui.css': 'text/css; charset=utf-8', 'swagger-ui-bundle.js': 'text/javascript; charset=utf-8' } as const;

/** Read on first use and kept: the bundle is about 1.5 MB and most processes never serve it. */
const assetCache = new Map<string, Buffer>();
function asset(name: string): { body: Buffer | string; type: string } | undefined {
  if (name === 'init.js') return { body: INIT_SCRIPT, type: 'text/javascript; charset=utf-8' };
  if (!Object.prototype.hasOwnProperty.call(SWAGGER_UI_FILES, name)) return undefined;
  let body = assetCache.get(name);
  if (!body) {
    body = readFileSync(path.join(path.dirname(require.resolve('swagger-ui-dist/package.json')), name));
    assetCache.set(name, body);
  }
  return { body, type: SWAGGER_UI_FILES[name as keyof typeof SWAGGER_UI_FILES] };
}

/** Swagger UI sets inline styles and shows data: images; scripts and calls stay on this origin. */
function pageHeaders(res: Response): void {
  res.setHeader(
    'Content-Security-Policy',
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  );
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
}

/** Mounted at the root, beside the usage page. `app` is the app whose routes the document describes. */
export function openApiRouter(app: Express): Router {
  const routes = declareRoutes();
  routes.get('/openapi.json', PUBLIC, (_req, res) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.json(openApiDocument(app));
  });
  routes.get('/docs', PUBLIC, (_req, res) => {
    pageHeaders(res);
    res.type('text/html; charset=utf-8').send(PAGE);
  });
  routes.get('/docs/:asset', PUBLIC, (req, res) => {
    const found = asset(req.params.asset);
    if (!found) throw new ApiProblem('not_found', `no reference page file ${req.params.asset}`);
    pageHeaders(res);
    res.setHeader('Cache-Control', 'public, max-age=3600');
    res.type(found.type).send(found.body);
  });
  return routes.router;
}
