/**
 * The customer usage page in a real browser (headless Chromium through playwright-core) against the real stack:
 * the HTTP API, a worker and the Temporal dev server over Postgres, as in billing-stack.test.ts.
 *
 *   3 days ago          2 days ago          yesterday           today
 *   |-- period starts ----|-------------------|-------------------|-- now (period runs a month)
 *   4,000 tokens          3,000 tokens        8,000 tokens        6,000 tokens, 5 calls
 *
 * The page, opened with customer A's usage token in the URL fragment, shows what the API reports for A (compared
 * text against JSON), refreshes itself when new usage arrives, and shows an error state, with none of B's data,
 * when pointed at customer B's subscription, which the API refuses. Screenshots go to test-results/.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { createApp } from '../../api/app';
import type { LogEntry } from '../../api/observability';
import { UsageSignalCoalescer } from '../../api/usage-signals';
import { RunningDevServer, startDevServer } from '../../scripts/temporal-servers';
import type { Database } from '../../store/database';
import { createBillingWorker } from '../../worker/create-worker';
import { SEARCH_ATTRIBUTE_REGISTRATIONS } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { CHROMIUM_MISSING, findChromium, HeadlessBrowser, launchChromium } from '../support/chromium';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { workflowBundle } from '../support/temporal';

const RESULTS_DIR = path.join(__dirname, '..', '..', 'test-results');
const DAY_MS = 86_400_000;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are checked field by field below
type Json = any;

const executable = findChromium();

if (!executable) {
  if (process.env.CI) {
    test('Chromium is installed for the usage page browser test (CI is set, so a missing browser fails)', () => {
      throw new Error(CHROMIUM_MISSING);
    });
  } else {
    console.warn(`Skipping the usage page browser test. ${CHROMIUM_MISSING}`);
    test.skip(`the customer usage page in a browser (skipped: no Chromium; apt-get install -y chromium)`, () => undefined);
  }
} else {
  describe('the customer usage page in headless Chromium', () => {
    let db: Database;
    let devServer: RunningDevServer;
    let nativeConnection: NativeConnection;
    let connection: Connection;
    let temporal: Client;
    let worker: Worker;
    let workerRun: Promise<void>;
    let api: Server;
    let baseUrl: string;
    let usageSignals: UsageSignalCoalescer;
    let browser: HeadlessBrowser;
    const logs: LogEntry[] = [];
    let admin: string;
    let app: string;
    const a = {} as { customerId: string; subscriptionId: string; token: string };
    const b = {} as { customerId: string; subscriptionId: string; token: string; name: string };

    async function call(method: string, route: string, body?: unknown, authorization = admin): Promise<{ status: number; json: Json }> {
      const response = await fetch(`${baseUrl}${route}`, {
        method,
        headers: { authorization, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: response.status, json: await response.json() };
    }

    /** What the API says to customer A's token: the data the page must show. */
    async function apiView(token: string, subscriptionId: string) {
      const bearer = `Bearer ${token}`;
      const [me, usage, daily, invoices] = await Promise.all([
        call('GET', '/v1/usage-token/me', undefined, bearer),
        call('GET', `/v1/subscriptions/${subscriptionId}/usage`, undefined, bearer),
        call('GET', `/v1/subscriptions/${subscriptionId}/usage/daily`, undefined, bearer),
        call('GET', `/v1/subscriptions/${subscriptionId}/invoices`, undefined, bearer),
      ]);
      for (const answer of [me, usage, daily, invoices]) expect(answer.status).toBe(200);
      return { me: me.json, usage: usage.json, daily: daily.json, invoices: invoices.json };
    }

    const text = (page: Page, selector: string): Promise<string> => page.locator(selector).innerText().then((value) => value.trim());

    beforeAll(async () => {
      mkdirSync(RESULTS_DIR, { recursive: true });
      [db, devServer, browser] = await Promise.all([
        createTestDatabase(),
        startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_REGISTRATIONS, log: () => undefined }),
        launchChromium(executable),
      ]);
      nativeConnection = await NativeConnection.connect({ address: devServer.address });
      worker = await createBillingWorker({ connection: nativeConnection, db, workflowBundle: await workflowBundle() });
      workerRun = worker.run();
      connection = await Connection.connect({ address: devServer.address });
      temporal = new Client({ connection });
      usageSignals = new UsageSignalCoalescer(db, temporal, { flushIntervalMs: 100, floorMs: 1_000, signalsPerPeriod: 2 });
      usageSignals.start();
      admin = (await createTestApiKey(db, 'admin')).headers.authorization;
      app = (await createTestApiKey(db, 'app')).headers.authorization;
      api = await new Promise<Server>((resolve) => {
        const server = createApp({ db, temporal, usageSignals, log: (entry) => logs.push(entry) }).listen(0, '127.0.0.1', () => resolve(server));
      });
      baseUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;

      // The catalog: tokens on a graduated price, calls per unit, 10.00 of usage included each month.
      expect((await call('POST', '/v1/metrics', { code: 'page_tokens', name: 'LLM tokens', event_type: 'page.llm', aggregation: 'sum', property: 'tokens' })).status).toBe(201);
      expect((await call('POST', '/v1/metrics', { code: 'page_calls', name: 'API calls', event_type: 'page.call', aggregation: 'count' })).status).toBe(201);
      const plan = await call('POST', '/v1/plans', {
        code: 'page-pro',
        name: 'AI Pro',
        currency: 'USD',
        billing_interval: 'P1M',
        flat_fee: '20.00',
        credit_bucket: '10.00',
        charges: [
          { metric_code: 'page_tokens', price: { model: 'graduated', tiers: [{ upTo: '10000', unitPrice: '0.0005' }, { upTo: null, unitPrice: '0.0002' }] } },
          { metric_code: 'page_calls', price: { model: 'per_unit', unitPrice: '0.01' } },
        ],
      });
      expect(plan.status).toBe(201);

      // Customer A subscribed at midnight UTC three days ago (so the period so far spans four UTC days); B today.
      const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
      const startA = new Date(today - 3 * DAY_MS);
      const recently = (ms: number): number => Math.max(today, Date.now() - ms); // today, and never in the future
      const customerA = await call('POST', '/v1/customers', { external_id: 'page-acme', name: 'Acme <Labs> & Co', currency: 'USD', payment_method: 'pm_sandbox_ok' });
      const customerB = await call('POST', '/v1/customers', { external_id: 'page-globex', name: 'Globex Secret Division', currency: 'USD', payment_method: 'pm_sandbox_ok' });
      a.customerId = customerA.json.id;
      b.customerId = customerB.json.id;
      b.name = customerB.json.name;
      a.subscriptionId = (await call('POST', '/v1/subscriptions', { customer_id: a.customerId, plan_code: 'page-pro', start_at: startA.toISOString() })).json.id;
      b.subscriptionId = (await call('POST', '/v1/subscriptions', { customer_id: b.customerId, plan_code: 'page-pro' })).json.id;
      for (const subscriptionId of [a.subscriptionId, b.subscriptionId]) {
        await eventually(async () => {
          const invoices = await call('GET', `/v1/invoices?subscription_id=${subscriptionId}`);
          return invoices.json.data.find((invoice: { status: string }) => invoice.status === 'paid');
        }, `the first invoice of ${subscriptionId}, paid`);
      }

      const at = (ms: number): string => new Date(ms).toISOString();
      const events = [
        { id: 'a-1', customer: 'page-acme', type: 'page.llm', timestamp: at(today - 3 * DAY_MS + DAY_MS / 2), properties: { tokens: 4000 } },
        { id: 'a-2', customer: 'page-acme', type: 'page.llm', timestamp: at(today - 2 * DAY_MS + DAY_MS / 2), properties: { tokens: 3000 } },
        { id: 'a-3', customer: 'page-acme', type: 'page.llm', timestamp: at(today - DAY_MS + DAY_MS / 2), properties: { tokens: 8000 } },
        { id: 'a-4', customer: 'page-acme', type: 'page.llm', timestamp: at(recently(60_000)), properties: { tokens: 6000 } },
        ...Array.from({ length: 5 }, (_, i) => ({ id: `a-call-${i}`, customer: 'page-acme', type: 'page.call', timestamp: at(recently(30_000 + i)), properties: {} })),
        // B subscribed moments ago: its usage is stamped after that start (earlier usage is refused, no period bills it).
        { id: 'b-1', customer: 'page-globex', type: 'page.llm', timestamp: at(Date.now()), properties: { tokens: 777777 } },
      ];
      expect((await call('POST', '/v1/events', { events })).json).toMatchObject({ accepted: events.length });

      // The product mints short-lived usage tokens for its customers' usage pages.
      a.token = (await call('POST', `/v1/customers/${a.customerId}/usage-tokens`, { expires_in: 900 }, app)).json.token;
      b.token = (await call('POST', `/v1/customers/${b.customerId}/usage-tokens`, { expires_in: 900 }, app)).json.token;
    });

    afterAll(async () => {
      await browser?.close();
      await new Promise((resolve) => api?.close(resolve));
      await usageSignals?.stop();
      worker?.shutdown();
      await workerRun;
      await nativeConnection?.close();
      await connection?.close();
      await devServer?.stop();
      await db?.destroy();
    });

    test('shows the numbers the API reports: usage per metric, cost, credit left, projected invoice, daily chart, past invoices', async () => {
      const page = await browser.context.newPage();
      const problems: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(message.text());
      });
      page.on('pageerror', (error) => problems.push(error.message));

      const response = await page.goto(`${baseUrl}/usage#token=${a.token}`);
      expect(response?.status()).toBe(200);
      expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
      expect(response?.headers()['referrer-policy']).toBe('no-referrer');
      await page.waitForSelector('body[data-state="ready"]', { timeout: 20_000 });
      // The token left the address bar once read.
      expect(page.url()).toBe(`${baseUrl}/usage`);

      const view = await apiView(a.token, a.subscriptionId);
      const { usage, daily, invoices, me } = view;
      // 21,000 tokens: 10,000 x 0.0005 + 11,000 x 0.0002 = 7.20, and 5 calls x 0.01 = 0.05; all inside the 10.00 credit.
      expect(usage.projected).toMatchObject({ usage_total: '7.25', credit_applied: '7.25', credit_remaining: '2.75', subtotal: '0.00' });

      expect(await text(page, '#customer-name')).toBe(me.customer.name); // "Acme <Labs> & Co", as text, not markup
      expect(await text(page, '#plan-summary')).toContain('AI Pro (page-pro)');
      expect(await text(page, '#usage-total')).toBe(`${usage.projected.usage_total} USD`);
      expect(await text(page, '#credit-remaining')).toBe(`${usage.projected.credit_remaining} USD`);
      expect(await text(page, '#projected-subtotal')).toBe(`${usage.projected.subtotal} USD`);
      expect(await text(page, '#projected-total')).toBe(`${usage.projected.subtotal} USD`);
      expect(await text(page, '#credit-detail')).toBe('7.25 USD of 10.00 USD included credit used.');

      // Usage per metric: quantity, events and the cost of each metric's projected line.
      const costByMetric = Object.fromEntries(usage.projected.lines.filter((line: Json) => line.kind === 'usage').map((line: Json) => [line.metricCode, line.amount]));
      expect(usage.usage).toHaveLength(2);
      for (const metric of usage.usage) {
        const row = page.locator(`#usage-table tr[data-metric="${metric.metric_code}"]`);
        expect(await row.locator('.quantity').getAttribute('data-quantity')).toBe(metric.quantity);
        expect((await row.locator('.events').innerText()).trim()).toBe(String(metric.event_count));
        expect((await row.locator('.cost').innerText()).trim()).toBe(`${costByMetric[metric.metric_code]} USD`);
      }
      expect(await text(page, '#usage-table tr[data-metric="page_tokens"] .quantity')).toBe('21,000');

      // The projected invoice: one row per line, amounts as the API sent them, tiers spelled out.
      const lineAmounts = await page.locator('#projected-lines tr.line td.num:last-child').allInnerTexts();
      expect(lineAmounts.map((value) => value.trim())).toEqual(usage.projected.lines.map((line: Json) => `${line.amount} USD`));
      expect((await page.locator('#projected-lines tr.breakdown').allInnerTexts()).map((row) => row.trim())).toEqual(
        expect.arrayContaining(['Tier 0 to 10,000: 10,000 × 0.0005 = 5', 'Tier above 10,000: 11,000 × 0.0002 = 2.2']),
      );

      // The chart: one bar per UTC day of the period so far, each carrying the API's quantity for that day.
      expect(daily.metrics.map((metric: Json) => metric.metric_code).sort()).toEqual(['page_calls', 'page_tokens']);
      for (const metric of daily.metrics) {
        const bars = page.locator(`#daily-charts figure[data-metric="${metric.metric_code}"] rect.bar`);
        expect(await bars.count()).toBe(metric.days.length);
        const drawn = await bars.evaluateAll((rects) => rects.map((rect) => [rect.getAttribute('data-date'), rect.getAttribute('data-quantity'), Number(rect.getAttribute('height'))]));
        expect(drawn.map(([date, quantity]) => [date, quantity])).toEqual(metric.days.map((day: Json) => [day.date, day.quantity]));
        // Taller bars for bigger days.
        const byHeight = [...drawn].sort((x, y) => (x[2] as number) - (y[2] as number)).map(([, quantity]) => Number(quantity));
        expect(byHeight).toEqual([...byHeight].sort((x, y) => x - y));
      }
      const tokenDays = daily.metrics.find((metric: Json) => metric.metric_code === 'page_tokens').days;
      expect(tokenDays.map((day: Json) => day.quantity)).toEqual(['4000', '3000', '8000', '6000']);
      expect(daily.metrics.find((metric: Json) => metric.metric_code === 'page_calls').days.map((day: Json) => day.quantity)).toEqual(['0', '0', '0', '5']);

      // Past invoices: the first period's invoice (the plan fee, in advance), paid.
      expect(invoices.data.length).toBeGreaterThanOrEqual(1);
      const rows = page.locator('#invoices-table tbody tr');
      expect(await rows.count()).toBe(invoices.data.length);
      for (const [index, invoice] of invoices.data.entries()) {
        expect((await rows.nth(index).locator('.number').innerText()).trim()).toBe(invoice.number);
        expect((await rows.nth(index).locator('.total').innerText()).trim()).toBe(`${invoice.total} ${invoice.currency}`);
      }
      expect(invoices.data[0]).toMatchObject({ kind: 'period', total: '20.00', status: 'paid', currency: 'USD' });

      await page.screenshot({ path: path.join(RESULTS_DIR, 'usage-page.png'), fullPage: true });
      expect(problems).toEqual([]);

      // Prepaid credit (docs/wallets.md): no wallet, no section; once credit is granted the next refresh shows the
      // balance (usage so far is inside the plan's credit, so all of it is available), the grant and the ledger.
      expect(await page.locator('#wallet').isHidden()).toBe(true);
      expect((await call('POST', `/v1/customers/${a.customerId}/wallet/grants`, { amount: '25.00', source: 'promotional', expires_at: '2099-01-01T00:00:00Z' })).status).toBe(201);
      await page.waitForSelector('#wallet:not([hidden])', { timeout: 20_000 });
      expect(await text(page, '#wallet-available')).toBe('25.00 USD');
      expect(await page.locator('#wallet-grants tbody tr').count()).toBe(1);
      expect((await page.locator('#wallet-grants tbody tr td').allInnerTexts()).map((cell) => cell.trim())).toEqual(['Promotional', '2099-01-01 00:00 UTC', '25.00 USD']);
      expect(await page.locator('#wallet-ledger tbody tr[data-kind="grant"]').count()).toBe(1);
      expect(problems).toEqual([]);

      // New usage arrives: the page picks it up on its own within a refresh or two.
      const refreshesBefore = Number(await page.locator('body').getAttribute('data-refreshes'));
      expect((await call('POST', '/v1/events', { events: [{ id: 'a-5', customer: 'page-acme', type: 'page.llm', timestamp: new Date(Date.now() - 1000).toISOString(), properties: { tokens: 20000 } }] })).json).toMatchObject({ accepted: 1 });
      const after = (await apiView(a.token, a.subscriptionId)).usage;
      // 41,000 tokens: 5.00 + 31,000 x 0.0002 = 11.20, plus 0.05: the 10.00 credit is used up, 1.25 to pay.
      expect(after.projected).toMatchObject({ usage_total: '11.25', credit_remaining: '0.00', subtotal: '1.25' });
      await page.waitForSelector(`#usage-total[data-amount="${after.projected.usage_total}"]`, { timeout: 15_000 });
      expect(await text(page, '#credit-remaining')).toBe(`${after.projected.credit_remaining} USD`);
      expect(await text(page, '#projected-subtotal')).toBe(`${after.projected.subtotal} USD`);
      expect(Number(await page.locator('body').getAttribute('data-refreshes'))).toBeGreaterThan(refreshesBefore);
      await page.close();
    });

    test("is refused customer B's subscription with A's token: the API says not found, the page shows an error and none of B's data", async () => {
      const bearer = `Bearer ${a.token}`;
      for (const route of [`/v1/subscriptions/${b.subscriptionId}/usage`, `/v1/subscriptions/${b.subscriptionId}/usage/daily`, `/v1/subscriptions/${b.subscriptionId}/invoices`]) {
        const refused = await call('GET', route, undefined, bearer);
        expect([route, refused.status, refused.json.code]).toEqual([route, 404, 'subscription_not_found']);
      }
      for (const route of [`/v1/subscriptions/${b.subscriptionId}`, `/v1/customers/${b.customerId}`, `/v1/invoices?customer_id=${b.customerId}`]) {
        expect([route, (await call('GET', route, undefined, bearer)).json.code]).toEqual([route, 'forbidden']);
      }
      const me = (await call('GET', '/v1/usage-token/me', undefined, bearer)).json;
      expect(me.customer.id).toBe(a.customerId);
      expect(me.subscriptions.map((subscription: Json) => subscription.id)).toEqual([a.subscriptionId]);

      const page = await browser.context.newPage();
      await page.goto(`${baseUrl}/usage#token=${a.token}&subscription=${b.subscriptionId}`);
      await page.waitForSelector('body[data-state="error"]', { timeout: 20_000 });
      expect(await page.locator('#error').getAttribute('data-code')).toBe('subscription_not_found');
      expect(await text(page, '#error-title')).toBe('Subscription not found');
      expect(await page.locator('#content').isHidden()).toBe(true);
      const shown = await page.locator('body').innerText();
      expect(shown).not.toContain(b.name);
      expect(shown).not.toContain('777,777');
      await page.screenshot({ path: path.join(RESULTS_DIR, 'usage-page-refused.png'), fullPage: true });
      await page.close();

      // B's own token shows B's page (the refusal above was about the token, not the subscription).
      const own = await browser.context.newPage();
      await own.goto(`${baseUrl}/usage#token=${b.token}`);
      await own.waitForSelector('body[data-state="ready"]', { timeout: 20_000 });
      expect(await text(own, '#customer-name')).toBe(b.name);
      await own.close();
    });

    test('without a token, or once its token is revoked, the page says so and stops polling', async () => {
      const bare = await browser.context.newPage();
      await bare.goto(`${baseUrl}/usage`);
      await bare.waitForSelector('body[data-state="error"]');
      expect(await bare.locator('#error').getAttribute('data-code')).toBe('no_token');
      await bare.close();

      const minted = (await call('POST', `/v1/customers/${a.customerId}/usage-tokens`, { expires_in: 600 }, app)).json;
      const page = await browser.context.newPage();
      await page.goto(`${baseUrl}/usage#token=${minted.token}`);
      await page.waitForSelector('body[data-state="ready"]', { timeout: 20_000 });
      expect((await call('POST', `/v1/api-keys/${minted.id}/revoke`, { reason: 'e2e' })).status).toBe(200);
      await page.waitForSelector('body[data-state="error"]', { timeout: 15_000 });
      expect(await page.locator('#error').getAttribute('data-code')).toBe('api_key_revoked');
      await page.close();
    });

    test("usage tokens never reach the server's request log: they travel in the fragment and the Authorization header", async () => {
      const logged = JSON.stringify(logs);
      for (const token of [a.token, b.token]) {
        expect(logged).not.toContain(token);
        expect(logged).not.toContain(token.slice(16)); // not even the secret part
      }
      const pageLoads = logs.filter((entry) => entry.path === '/usage');
      expect(pageLoads.length).toBeGreaterThanOrEqual(3);
      expect(logs.filter((entry) => entry.path === '/v1/usage-token/me' && entry.status === 200).length).toBeGreaterThanOrEqual(2);
    });
  });
}
