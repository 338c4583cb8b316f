/**
 * Ingestion caches each customer's first subscription start (api/customer-directory.ts) instead of reading it for
 * every batch. A cached start can only be later than the truth (a new subscription moves it earlier or leaves it),
 * so it may only ever accept rightly: an event before it is refused only after Postgres confirms.
 */
import type { Database } from '../../store/database';
import type { CustomerRow } from '../../store/customers';
import type { PlanRow } from '../../store/catalog';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let customer: CustomerRow;
let plan: PlanRow;
/** Reads of first subscription starts, as Postgres sees them. */
let firstStartReads = 0;

const DAY = 86_400_000;
const now = Date.now();
const daysAgo = (days: number): Date => new Date(now - days * DAY);
const call = (id: string, at: Date, externalId = 'first-start-cache') => ({ id, customer: externalId, type: 'cache.call', timestamp: at.toISOString(), properties: {} });

beforeAll(async () => {
  db = await createTestDatabase();
  db.on('query', (query: { sql: string }) => {
    if (query.sql.includes('first_start')) firstStartReads += 1;
  });
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  expect((await api.http.call('POST', '/v1/metrics', { code: 'cache_calls', name: 'Calls', event_type: 'cache.call', aggregation: 'count' })).status).toBe(201);
  customer = await insertCustomer(db, { external_id: 'first-start-cache' });
  plan = await insertPlan(db, { code: 'cache-plan', billing_interval: 'P1M', flat_fee: '1.00', charges: [{ metricCode: 'cache_calls', price: { model: 'per_unit', unitPrice: '0.01' } }] as never });
  await startedSubscription(customer, daysAgo(10));
});

/** A subscription whose workflow started (no longer `scheduled`): it can never be removed again. */
async function startedSubscription(owner: CustomerRow, startAt: Date): Promise<string> {
  const { row } = await insertSubscription(db, owner, plan, startAt);
  await db('subscriptions').where({ id: row.id }).update({ status: 'active' });
  return row.id;
}

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test('batches after the first read the start from the cache, not from Postgres', async () => {
  expect((await api.http.call('POST', '/v1/events', { events: [call('warm', daysAgo(1))] })).json.accepted).toBe(1);
  const before = firstStartReads;
  for (let batch = 0; batch < 5; batch += 1) {
    expect((await api.http.call('POST', '/v1/events', { events: [call(`hot-${batch}`, daysAgo(2))] })).json.accepted).toBe(1);
  }
  expect(firstStartReads).toBe(before);
});

test('a subscription with an earlier start, written by another process, is honoured at once: a stale cache never refuses wrongly', async () => {
  // Cached: day -10. Another API process now adds a subscription starting on day -20 (straight into Postgres).
  await startedSubscription(customer, daysAgo(20));
  const response = await api.http.call('POST', '/v1/events', { events: [call('after-new-start', daysAgo(15)), call('before-any-start', daysAgo(25))] });
  expect(response.status).toBe(200);
  expect(response.json.accepted).toBe(1);
  expect(response.json.errors).toEqual([{ index: 1, code: 'timestamp_before_subscription', detail: expect.stringContaining(daysAgo(20).toISOString()) }]);
  expect(await db('usage_events').where({ customer_id: customer.id }).pluck('event_id')).toEqual(expect.arrayContaining(['after-new-start']));
  expect(await db('usage_events').where({ customer_id: customer.id, event_id: 'before-any-start' })).toHaveLength(0);

  // The confirmed start is cached from then on: day -15 is accepted again without a read.
  const before = firstStartReads;
  expect((await api.http.call('POST', '/v1/events', { events: [call('after-new-start-2', daysAgo(15))] })).json.accepted).toBe(1);
  expect(firstStartReads).toBe(before);
});

test("a scheduled subscription's start is never cached: a failed start removes the row, and events before the remaining start are refused again", async () => {
  // Started on day -10; another request adds one starting on day -20 whose workflow then fails to start, so the
  // API removes its row (still `scheduled`). Had day -20 been cached, day -15 would be accepted and never billed.
  const other = await insertCustomer(db, { external_id: 'first-start-removed' });
  await startedSubscription(other, daysAgo(10));
  const { row: unstarted } = await insertSubscription(db, other, plan, daysAgo(20));
  expect((await api.http.call('POST', '/v1/events', { events: [call('while-scheduled', daysAgo(15), 'first-start-removed')] })).json.accepted).toBe(1);
  await db('subscriptions').where({ id: unstarted.id, status: 'scheduled' }).delete();
  const refused = await api.http.call('POST', '/v1/events', { events: [call('after-removal', daysAgo(15), 'first-start-removed')] });
  expect([refused.status, refused.json.errors?.[0]?.code]).toEqual([422, 'timestamp_before_subscription']);
});
