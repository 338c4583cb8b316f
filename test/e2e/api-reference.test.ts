/**
 * The contract as users meet it: GET /openapi.json is the document, GET /docs a reference page whose files all
 * come from the API itself (no CDN), and the page renders the operations in headless Chromium with every request
 * to another origin blocked. No database or Temporal is needed: these routes touch neither.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { offlineApp } from '../../api/openapi-offline';
import { openApiDocument } from '../../api/openapi';
import { CHROMIUM_MISSING, findChromium, launchChromium } from '../support/chromium';
import { serve, TestHttp } from '../support/http';

const RESULTS_DIR = path.join(__dirname, '..', '..', 'test-results');

let http: TestHttp;
let document: ReturnType<typeof openApiDocument>;
let closeApp: () => Promise<void>;

beforeAll(async () => {
  const { app, close } = offlineApp();
  closeApp = close;
  document = openApiDocument(app);
  http = await serve(app);
});

afterAll(async () => {
  await http?.close();
  await closeApp?.();
});

test('GET /openapi.json serves the document, public', async () => {
  const served = await http.call('GET', '/openapi.json');
  expect(served.status).toBe(200);
  expect(served.json).toEqual(JSON.parse(JSON.stringify(document)));
  expect(served.json.openapi).toBe('3.1.0');
});

test('GET /docs is a page whose scripts and styles are served by the API, under a strict CSP', async () => {
  const page = await http.call('GET', '/docs');
  expect(page.status).toBe(200);
  expect(page.type).toContain('text/html');
  expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
  const references = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map(([, url]) => url);
  expect(references.length).toBeGreaterThanOrEqual(3);
  for (const reference of references) {
    expect(reference).toMatch(/^\/docs\//); // same origin: nothing from a CDN
    const file = await http.call('GET', reference);
    expect([reference, file.status]).toEqual([reference, 200]);
    expect(file.text.length).toBeGreaterThan(50);
  }
  expect((await http.call('GET', '/docs/swagger-ui-bundle.js')).type).toContain('javascript');
  expect(await http.call('GET', '/docs/secrets.json')).toMatchObject({ status: 404, json: { code: 'not_found' } });
});

const executable = findChromium();
if (!executable) {
  if (process.env.CI) {
    test('Chromium is installed for the reference page browser test', () => {
      throw new Error(CHROMIUM_MISSING);
    });
  } else {
    test.skip(`the reference page in a browser (skipped: no Chromium; apt-get install -y chromium)`, () => undefined);
  }
} else {
  test('the reference page renders the operations in headless Chromium, asking no other origin for anything', async () => {
    const browser = await launchChromium(executable);
    const elsewhere: string[] = [];
    try {
      const origin = new URL(http.baseUrl).origin;
      await browser.context.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
        elsewhere.push(url);
        return route.abort();
      });
      const page = await browser.context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(String(error)));
      await page.goto(`${http.baseUrl}/docs`);
      await page.getByText('meterloop billing API').first().waitFor({ timeout: 60_000 });
      await page.getByText('Create a customer').first().waitFor({ timeout: 30_000 });
      await page.getByText('/v1/subscriptions/{id}/cancel').first().waitFor({ timeout: 30_000 });
      mkdirSync(RESULTS_DIR, { recursive: true });
      await page.screenshot({ path: path.join(RESULTS_DIR, 'api-reference.png') });
      expect(errors).toEqual([]);
      expect(elsewhere).toEqual([]);
    } finally {
      await browser.close();
    }
  });
}
