/**
 * GET /v1/invoices is documented "Newest first" (docs/openapi.json) and cut at `limit` (default 50, at most 200) with
 * no cursor: listed oldest first, a subscription's newest invoices were unreachable once it had more than `limit`
 * (a PT1M plan after 50 minutes: the invoice just issued, the one a client polls for, never showed).
 */
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'finance')).headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test('the newest invoices come first, so `limit` cuts the oldest', async () => {
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: 'monthly', billing_interval: 'P1M', flat_fee: '10.00' });
  const { row: subscription } = await insertSubscription(db, customer, plan, new Date('2030-01-01T00:00:00Z'));
  const months = ['2030-01', '2030-02', '2030-03', '2030-04'];
  for (const [index, month] of months.entries()) {
    await db('invoices').insert({
      customer_id: customer.id,
      subscription_id: subscription.id,
      kind: 'period',
      status: 'paid',
      currency: 'USD',
      number: `INV-LIST-${index + 1}`,
      period_start: new Date(`${month}-01T00:00:00Z`),
      period_end: new Date(`${months[index + 1] ?? '2030-05'}-01T00:00:00Z`),
      total: '10',
    });
  }

  const all = await api.http.call('GET', `/v1/invoices?subscription_id=${subscription.id}`);
  expect(all.status).toBe(200);
  expect(all.json.data.map((invoice: { number: string }) => invoice.number)).toEqual(['INV-LIST-4', 'INV-LIST-3', 'INV-LIST-2', 'INV-LIST-1']);

  const latest = await api.http.call('GET', `/v1/invoices?subscription_id=${subscription.id}&limit=2`);
  expect(latest.json.data.map((invoice: { number: string }) => invoice.number)).toEqual(['INV-LIST-4', 'INV-LIST-3']);
});
