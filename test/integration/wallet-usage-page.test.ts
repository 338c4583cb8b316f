/**
 * The usage page's wallet section (issue 12 point 6, docs/usage-page.md), without a browser: the page's markup and
 * script have the section, hidden unless the wallet answer says `has_wallet`; the answer the page reads with the
 * customer's usage token (GET /v1/customers/:id/wallet) carries the balance, the grants with their expiries, the
 * recent ledger and the run-out date at the period's burn rate. A customer whose wallet only records the plan's
 * included credit has no wallet section. (test/e2e/usage-page.test.ts drives the section in Chromium.)
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import type { CustomerRow } from '../../store/customers';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let finance: TestApiKey;
let customer: CustomerRow;
let token: TestApiKey;
const hour = 3_600_000;
// Timeline: the previous period [-3h, -1h) was closed and invoiced; the current one is [-1h, +1h).
const now = Date.now();
const previous = { start: new Date(now - 3 * hour).toISOString(), end: new Date(now - hour).toISOString() };
const current = { start: previous.end, end: new Date(now + hour).toISOString() };

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  finance = await createTestApiKey(db, 'finance');
  await db('billable_metrics').insert({ code: 'up_tokens', name: 'Tokens', event_type: 'up.llm', aggregation: 'sum', property: 'tokens' });
  customer = await insertCustomer(db, { external_id: 'up-acme' });
  token = await createTestApiKey(db, 'customer_usage', { customerId: customer.id });
  const plan = await insertPlan(db, { code: 'up-pro', billing_interval: 'PT2H', flat_fee: '0', charges: [{ metricCode: 'up_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }] as never, settings: { creditBucket: '2.00' } });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:up-acme', start_at: new Date(previous.start), current_period_start: new Date(current.start), current_period_end: new Date(current.end) })
    .returning('*');
  // Previous period: 150 tokens = 1.50, all inside the 2.00 bucket (0.50 of it expires unused).
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'up-1', eventType: 'up.llm', occurredAt: new Date(now - 2 * hour), properties: { tokens: '150' } }]);
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(previous.start), periodEnd: new Date(previous.end), planId: plan.id, charges: plan.charges as never }),
  );
  await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: current, usagePeriod: previous });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const wallet = async () => {
  const response = await api.http.call('GET', `/v1/customers/${customer.id}/wallet`, undefined, token.headers);
  expect(response.status).toBe(200);
  return response.json;
};

test('the served page has a wallet section, hidden until the wallet answer says the customer has one', async () => {
  const html = await api.http.call('GET', '/usage');
  expect(html.text).toContain('<section id="wallet" hidden>');
  for (const id of ['wallet-available', 'wallet-run-out', 'wallet-grants', 'wallet-ledger']) expect(html.text).toContain(`id="${id}"`);
  const script = (await api.http.call('GET', '/usage/usage-page.js')).text;
  expect(script).toContain("$('wallet').hidden = !wallet.has_wallet;");
  expect(script).toContain("'/wallet'");
});

test('only the plan’s included credit recorded: no wallet section, the bucket’s history is in the ledger', async () => {
  const view = await wallet();
  expect(view).toMatchObject({ has_wallet: false, balance: '0.00', grants: [], projected_run_out_at: null });
  // Newest first: the unused 0.50 expired, 1.50 consumed by the bucket line, the 2.00 granted.
  expect(view.ledger.map((entry: { kind: string; amount: string; balance_after: string }) => [entry.kind, entry.amount, entry.balance_after])).toEqual([
    ['expiry', '-0.50', '0.00'],
    ['consumption', '-1.50', '0.50'],
    ['grant', '2.00', '2.00'],
  ]);
});

test('with credit of their own: balance, grants with expiries, recent ledger and the run-out date at the current burn rate', async () => {
  const granted = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '25.00', source: 'promotional', expires_at: '2099-01-01T00:00:00Z' }, finance.headers);
  expect(granted.status).toBe(201);
  // This period so far: 350 tokens = 3.50, of which the 2.00 bucket covers 2.00: 1.50 pending against the wallet.
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'up-2', eventType: 'up.llm', occurredAt: new Date(now - 30 * 60_000), properties: { tokens: '350' } }]);
  const view = await wallet();
  expect(view).toMatchObject({
    has_wallet: true,
    balance: '25.00',
    pending_usage: '1.50',
    available: '23.50', // 25.00 − 1.50
    grants: [{ source: 'promotional', amount: '25.00', remaining: '25.00', expires_at: '2099-01-01T00:00:00.000Z' }],
  });
  expect(view.ledger[0]).toMatchObject({ kind: 'grant', amount: '25.00', balance_after: '25.00' });
  expect(view.ledger).toHaveLength(4);
  // 1.50 spent in the hour (and a bit) since the period began: 23.50 lasts 23.50 / 1.50 ≈ 15.7 such stretches.
  const elapsed = Date.now() - Date.parse(current.start);
  const expected = Date.now() + (23.5 / 1.5) * elapsed;
  expect(Math.abs(Date.parse(view.projected_run_out_at) - expected)).toBeLessThan(60_000);
});
