/**
 * A value with a minus sign on a metric that takes no negatives is refused at the edge, zero included.
 * Aggregation (store/usage.ts NUMERIC_TEXT, the running totals and the hard-limit check alike) reads such a metric's
 * values without a sign, so "-0" or "-0.00" counts as absent. Accepted, it was never billed as it should be:
 *
 *   payments (count of "amount"), 2.9 % + 0.30 per payment   events "10.00", "-0.00", "-0"
 *   before: 3 accepted, the period counts 1 payment  -> 0.59 billed, 0.60 of fixed fees lost
 *   latest "gb" metric, values "40" then "-0"        -> the period reads 40 GB, not 0: overbilled
 *
 * "What gets past the edge must be billable" (docs/usage-events.md), so the edge refuses the sign instead.
 * A corrections metric (allow_negative) still takes "-0", and a JSON -0 arrives as 0 (JSON.parse) and is stored as 0.
 */
import type { Database } from '../../store/database';
import type { CustomerRow } from '../../store/customers';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let acme: CustomerRow;
let subscriptionId: string;
const periodStart = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000 + 400);
const periodEnd = new Date(periodStart.getTime() + 7_200_000);
const inPeriod = () => new Date(Date.now() - 60_000).toISOString();

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  for (const metric of [
    { code: 'mz_payments', name: 'Payments', event_type: 'mz.payment', aggregation: 'count', property: 'amount' },
    { code: 'mz_storage', name: 'Storage', event_type: 'mz.storage', aggregation: 'latest', property: 'gb' },
    { code: 'mz_credits', name: 'Credits given back', event_type: 'mz.credit', aggregation: 'sum', property: 'delta', allow_negative: true },
  ]) {
    expect((await api.http.call('POST', '/v1/metrics', metric)).status).toBe(201);
  }
  const plan = await api.http.call('POST', '/v1/plans', {
    code: 'mz-plan',
    name: 'Payments',
    currency: 'USD',
    billing_interval: 'PT2H',
    flat_fee: '0',
    charges: [
      { metric_code: 'mz_payments', price: { model: 'percentage', rate: '0.029', fixedFeePerEvent: '0.30' } },
      { metric_code: 'mz_storage', price: { model: 'per_unit', unitPrice: '0.10' } },
      { metric_code: 'mz_credits', price: { model: 'per_unit', unitPrice: '0.01' } },
    ],
  });
  expect(plan.status).toBe(201);
  const planRow = await db('plans').where({ code: 'mz-plan' }).first();
  acme = await insertCustomer(db, { external_id: 'mz-acme' });
  const { row } = await insertSubscription(db, acme, planRow, periodStart);
  subscriptionId = row.id;
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: periodEnd });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const payment = (id: string, amount: unknown) => ({ id, customer: 'mz-acme', type: 'mz.payment', timestamp: inPeriod(), properties: { amount } });
const storage = (id: string, gb: unknown, timestamp = inPeriod()) => ({ id, customer: 'mz-acme', type: 'mz.storage', timestamp, properties: { gb } });

async function storedEventIds(): Promise<string[]> {
  return (await db('usage_events').where({ customer_id: acme.id }).orderBy('event_id').select('event_id')).map((row: { event_id: string }) => row.event_id);
}

async function usageOf(metricCode: string): Promise<{ quantity: string; event_count: number; amount?: string }> {
  const response = await api.http.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
  expect(response.status).toBe(200);
  return response.json.usage.find((metric: { metric_code: string }) => metric.metric_code === metricCode);
}

test('"-0" and "-0.00" on a count metric are refused as negative_value; every accepted payment is counted', async () => {
  const response = await api.http.call('POST', '/v1/events', { events: [payment('p-1', '10.00'), payment('p-2', '-0.00'), payment('p-3', '-0')] });
  expect(response.status).toBe(200);
  expect(response.json).toMatchObject({
    accepted: 1,
    rejected: 2,
    errors: [
      { index: 1, code: 'negative_value' },
      { index: 2, code: 'negative_value' },
    ],
  });
  expect(await storedEventIds()).toEqual(['p-1']);
  // Each counted payment bears its fixed fee: 0.29 + 0.30.
  expect(await usageOf('mz_payments')).toMatchObject({ quantity: '1', event_count: 1, amount: '0.59' });
});

test('"-0" on a latest metric is refused, so the period never bills a stale earlier value for it', async () => {
  const earlier = new Date(Date.now() - 120_000).toISOString();
  expect((await api.http.call('POST', '/v1/events', storage('s-1', '40', earlier))).json).toMatchObject({ accepted: 1 });
  const zeroed = await api.http.call('POST', '/v1/events', storage('s-2', '-0'));
  expect(zeroed.status).toBe(422);
  expect(zeroed.json.errors).toEqual([expect.objectContaining({ index: 0, code: 'negative_value' })]);
  const plainZero = await api.http.call('POST', '/v1/events', { events: [storage('s-3', '0'), storage('s-4', -0)] });
  expect(plainZero.json).toMatchObject({ accepted: 2, rejected: 0 });
  expect(await usageOf('mz_storage')).toMatchObject({ quantity: '0' });
});

test('a corrections metric that allows negatives still takes "-0"', async () => {
  const response = await api.http.call('POST', '/v1/events', { id: 'c-1', customer: 'mz-acme', type: 'mz.credit', timestamp: inPeriod(), properties: { delta: '-0' } });
  expect(response.json).toMatchObject({ accepted: 1, rejected: 0 });
  expect(await usageOf('mz_credits')).toMatchObject({ quantity: '0', event_count: 1 });
});
