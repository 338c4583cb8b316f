/**
 * The customer usage page (docs/usage-page.md): three static files from api/usage-page/, no build step.
 *
 *   GET /usage                  the page; the customer's token travels in the URL fragment (`/usage#token=...`),
 *   GET /usage/usage-page.js    which browsers never send to a server, so it reaches no access log or proxy;
 *   GET /usage/usage-page.css   the script sends it as `Authorization: Bearer` on its own API calls.
 *
 * The routes are public (the files hold no data); every number on the page comes from token-checked API calls.
 */
import type { Router, Response } from 'express';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PUBLIC, declareRoutes } from '../route-declarations';

export const USAGE_PAGE_DIR = path.join(__dirname, '..', 'usage-page');

/**
 * Scripts and styles from this origin only (no inline code, so injected markup cannot run), calls to this API only,
 * never framed, and no Referer: nothing from the page's address leaves it.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const ASSETS = {
  '/usage': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/usage/usage-page.js': { file: 'usage-page.js', type: 'text/javascript; charset=utf-8' },
  '/usage/usage-page.css': { file: 'usage-page.css', type: 'text/css; charset=utf-8' },
} as const;

function securityHeaders(res: Response): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  // Small files: revalidated on every load, so a deploy is seen at once.
  res.setHeader('Cache-Control', 'no-cache');
}

/** Mounted at the root: the page lives outside /v1 because it is not part of the JSON API. */
export function usagePageRouter(): Router {
  const routes = declareRoutes();
  for (const [route, asset] of Object.entries(ASSETS)) {
    // Read once at start-up: a missing file fails the start, not a customer's request.
    const body = readFileSync(path.join(USAGE_PAGE_DIR, asset.file));
    routes.get(route, PUBLIC, (_req, res) => {
      securityHeaders(res);
      res.type(asset.type).send(body);
    });
  }
  return routes.router;
}
