/**
 * Bounds at the edge (issue 11): every value that used to be stored and then broke the usage preview or the period
 * invoice is refused by POST /v1/events or POST /v1/plans with a stable code, and nothing is written. What got past
 * the edge before these checks (rows inserted directly here) can no longer make the preview answer 500.
 */
import type { Database } from '../../store/database';
import type { CustomerRow } from '../../store/customers';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let acme: CustomerRow;
let subscriptionId: string;
// The subscription started at 12:00:00.400 an hour ago; its first period is open.
const periodStart = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000 + 400);
const inPeriod = () => new Date(Date.now() - 60_000).toISOString();

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  for (const metric of [
    { code: 'edge_tokens', name: 'Tokens', event_type: 'edge.llm', aggregation: 'sum', property: 'tokens' },
    { code: 'edge_payments', name: 'Payments', event_type: 'edge.payment', aggregation: 'count', property: 'amount' },
    { code: 'edge_credits', name: 'Credits given back', event_type: 'edge.credit', aggregation: 'sum', property: 'delta', allow_negative: true },
  ]) {
    expect((await api.http.call('POST', '/v1/metrics', metric)).status).toBe(201);
  }
  acme = await insertCustomer(db, { external_id: 'edge-acme' });
  await insertCustomer(db, { external_id: 'edge-newcomer' });
  const plan = await insertPlan(db, {
    code: 'edge-plan',
    billing_interval: 'PT2H',
    flat_fee: '1.00',
    charges: [
      { metricCode: 'edge_tokens', price: { model: 'per_unit', unitPrice: '0.001' } },
      { metricCode: 'edge_credits', price: { model: 'per_unit', unitPrice: '0.01' } },
    ] as never,
  });
  subscriptionId = (await insertSubscription(db, acme, plan, periodStart)).row.id;
  await db('subscriptions')
    .where({ id: subscriptionId })
    .update({ status: 'active', current_period_start: periodStart, current_period_end: new Date(periodStart.getTime() + 7_200_000) });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

async function storedEvents(): Promise<number> {
  return Number((await db('usage_events').count<{ count: string }[]>('* as count'))[0].count);
}

const tokens = (id: string, value: unknown, timestamp = inPeriod()) => ({ id, customer: 'edge-acme', type: 'edge.llm', timestamp, properties: { tokens: value } });

/** Posts events that must all be refused: 422, the expected code per index, nothing written. */
async function expectRefused(events: unknown[], codes: string[]): Promise<void> {
  const before = await storedEvents();
  const response = await api.http.call('POST', '/v1/events', { events });
  expect(response.status).toBe(422);
  expect(response.json.code).toBe('batch_rejected');
  expect(response.json.errors.map((error: { index: number; code: string }) => [error.index, error.code])).toEqual(codes.map((code, index) => [index, code]));
  expect(await storedEvents()).toBe(before);
}

test('negative values are refused on an ordinary metric, taken on a corrections metric that opts in', async () => {
  await expectRefused([tokens('neg-1', '-50000'), tokens('neg-2', -5)], ['negative_value', 'negative_value']);

  const metrics = await api.http.call('GET', '/v1/metrics');
  expect(metrics.json.data.find((metric: { code: string }) => metric.code === 'edge_credits')).toMatchObject({ allow_negative: true });
  expect(metrics.json.data.find((metric: { code: string }) => metric.code === 'edge_tokens')).toMatchObject({ allow_negative: false });
  const credit = await api.http.call('POST', '/v1/events', { id: 'credit-1', customer: 'edge-acme', type: 'edge.credit', timestamp: inPeriod(), properties: { delta: -5 } });
  expect(credit.json).toMatchObject({ accepted: 1, rejected: 0 });

  const wrongAggregation = await api.http.call('POST', '/v1/metrics', { code: 'edge_bad', name: 'B', event_type: 'x', aggregation: 'max', property: 'v', allow_negative: true });
  expect([wrongAggregation.status, wrongAggregation.json.code]).toEqual([422, 'validation_failed']);
});

test('quantities a NUMERIC(30, 12) column could not hold, summed over a period, are refused', async () => {
  await expectRefused(
    [tokens('big-1', '1234567890123456789'), tokens('big-2', '12345678901234567890'), tokens('big-3', '1000000000000'), tokens('big-4', 9_007_199_254_740_991)],
    ['value_out_of_range', 'value_out_of_range', 'value_out_of_range', 'value_out_of_range'],
  );
  const mixed = await api.http.call('POST', '/v1/events', { events: [tokens('big-ok', '999999999999.5'), tokens('big-5', '99999999999999999999')] });
  expect(mixed.json).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 1, code: 'value_out_of_range' }] });
});

test('a 5 MB property value and a 16 KB+ event are refused', async () => {
  await expectRefused(
    [
      { ...tokens('huge-1', '1'), properties: { tokens: '1', note: 'z'.repeat(5_000_000) } },
      { ...tokens('huge-2', '1'), properties: { tokens: '1', note: 'z'.repeat(1_025) } },
      { ...tokens('huge-3', '1'), properties: { tokens: '1', ...Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`p${i}`, 'z'.repeat(1_000)])) } },
    ],
    ['property_too_large', 'property_too_large', 'event_too_large'],
  );
});

test('usage before the first subscription start is refused, the README case (no milliseconds) included', async () => {
  const startSecond = new Date(Math.floor(periodStart.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
  await expectRefused(
    [tokens('early-1', '1', startSecond), tokens('early-2', '1', '1970-01-01T00:00:00Z'), tokens('early-3', '1', new Date(periodStart.getTime() - 1).toISOString())],
    ['timestamp_before_subscription', 'timestamp_before_subscription', 'timestamp_before_subscription'],
  );
  const atStart = await api.http.call('POST', '/v1/events', tokens('early-ok', '1', periodStart.toISOString()));
  expect(atStart.json).toMatchObject({ accepted: 1 });
});

test('impossible calendar dates are refused, not rolled over', async () => {
  const newcomer = (id: string, timestamp: string) => ({ id, customer: 'edge-newcomer', type: 'edge.llm', timestamp, properties: { tokens: '1' } });
  await expectRefused(
    [newcomer('date-1', '2026-02-30T10:00:00Z'), newcomer('date-2', '2026-04-31T10:00:00Z'), newcomer('date-3', '2026-06-01T24:00:00Z')],
    ['invalid_timestamp', 'invalid_timestamp', 'invalid_timestamp'],
  );
});

test('a percentage charge must fit its metric: refused on a sum metric, accepted on a count metric whose property is checked numeric', async () => {
  const plan = (code: string, metric: string) => ({
    code,
    name: code,
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0.00',
    charges: [{ metric_code: metric, price: { model: 'percentage', rate: '0.029', fixedFeePerEvent: '0.30' } }],
  });
  const plansBefore = Number((await db('plans').count<{ count: string }[]>('* as count'))[0].count);
  const onSum = await api.http.call('POST', '/v1/plans', plan('edge-pct-sum', 'edge_tokens'));
  expect([onSum.status, onSum.json.code]).toEqual([422, 'charge_metric_mismatch']);
  expect(onSum.json.errors).toEqual([{ path: 'charges.0.metric_code', message: expect.stringContaining('count metric') }]);
  expect(Number((await db('plans').count<{ count: string }[]>('* as count'))[0].count)).toBe(plansBefore);
  expect((await api.http.call('POST', '/v1/plans', plan('edge-pct-count', 'edge_payments'))).status).toBe(201);

  const payment = (id: string, amount: unknown) => ({ id, customer: 'edge-acme', type: 'edge.payment', timestamp: inPeriod(), properties: { amount } });
  await expectRefused([payment('pay-1', 'twelve'), payment('pay-2', '-3.00'), payment('pay-3', { value: 3 })], ['non_numeric_property', 'negative_value', 'non_numeric_property']);
});

test('poison stored before these checks cannot make the usage preview fail', async () => {
  // Rows written straight to the table, as events accepted by an older version were.
  await db('usage_events').insert(
    ['-50000', '12345678901234567890', 'abc', '-0.5'].map((value, index) => ({
      customer_id: acme.id,
      event_id: `legacy-${index}`,
      event_type: 'edge.llm',
      occurred_at: new Date(Date.now() - 30_000),
      properties: JSON.stringify({ tokens: value }),
    })),
  );
  await db('usage_events').insert({ customer_id: acme.id, event_id: 'legacy-credit', event_type: 'edge.credit', occurred_at: new Date(Date.now() - 30_000), properties: JSON.stringify({ delta: '-900' }) });

  const preview = await api.http.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
  expect(preview.status).toBe(200);
  const quantities = Object.fromEntries(preview.json.usage.map((metric: { metric_code: string; quantity: string }) => [metric.metric_code, metric.quantity]));
  // Tokens: only the accepted values (999999999999.5 + 1); the corrections sum nets negative and bills 0.
  expect(quantities).toEqual({ edge_tokens: '1000000000000.5', edge_credits: '0' });
});
