/**
 * Every instant a request carries was checked as RFC 3339 only, which lets through instants outside years 0001-9999
 * in UTC ("0000-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00" = year 0, "9999-12-31T23:59:59-14:00" = year 10000)
 * and starts thousands of years away. Such a value reached Postgres (which refuses the "0000-", "-000001-" or
 * "+010000-" text toISOString writes), a workflow (a timer 8,000 years away: a subscription that never starts, a
 * pause never resumed) or an answer the OpenAPI document's date-time format refuses. Each is refused now with 422
 * validation_failed naming the field, nothing written and no workflow touched (docs/api.md, "Instants").
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
  // The contract check is off: before the fix some of these answered instants the OpenAPI document refuses.
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers, checkContract: false });
  await insertPlan(db, { code: 'monthly', billing_interval: 'P1M', flat_fee: '10.00' });
});

beforeEach(() => {
  api.temporalCalls.length = 0;
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

/** Outside years 0001-9999 in UTC, however the text is written. */
const OUT_OF_RANGE = ['0000-01-01T00:00:00Z', '0001-01-01T00:00:00+01:00', '9999-12-31T23:59:59-14:00'];
/** In range, but further ahead than a start, a pause or a grant's effective date means anything (ten years: docs/api.md). */
const FAR_FUTURE = '9999-01-01T00:00:00Z';

/** What a refusal must look like: 422 validation_failed naming the field, and no workflow started or addressed. */
function refused(response: { status: number; json?: { code?: string; errors?: { path?: string }[] } }) {
  return { status: response.status, code: response.json?.code, paths: (response.json?.errors ?? []).map((error) => error.path), temporal: api.temporalCalls.length };
}
const refusal = (field: string) => ({ status: 422, code: 'validation_failed', paths: [field], temporal: 0 });

test.each([...OUT_OF_RANGE, FAR_FUTURE])('a subscription starting at %s is refused, nothing stored', async (at) => {
  const customer = await insertCustomer(db);
  const response = await api.http.call('POST', '/v1/subscriptions', { customer_id: customer.id, plan_code: 'monthly', start_at: at });
  expect(refused(response)).toEqual(refusal('start_at'));
  expect(await db('subscriptions').where({ customer_id: customer.id })).toHaveLength(0);
});

test.each([...OUT_OF_RANGE, FAR_FUTURE])('a pause until %s is refused before the workflow is asked', async (until) => {
  const customer = await insertCustomer(db);
  const [plan] = await db('plans').where({ code: 'monthly' });
  const { row } = await insertSubscription(db, customer, plan, new Date());
  const response = await api.http.call('POST', `/v1/subscriptions/${row.id}/pause`, { until });
  expect(refused(response)).toEqual(refusal('until'));
});

test.each([
  ['from', '0000-01-01T00:00:00Z', '2030-01-01T00:00:00Z'],
  ['from', '0001-01-01T00:00:00+01:00', '2030-01-01T00:00:00Z'],
  ['to', '2030-01-01T00:00:00Z', '9999-12-31T23:59:59-14:00'],
])('a margin report with %s out of range is refused (%s to %s)', async (field, from, to) => {
  const response = await api.http.call('GET', `/v1/reports/margins?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
  expect(refused(response)).toEqual(refusal(field));
});

test('a margin report over the whole range answers instants the OpenAPI document accepts', async () => {
  const response = await api.http.call('GET', `/v1/reports/margins?from=${encodeURIComponent('0001-01-01T00:00:00Z')}&to=${encodeURIComponent('9999-12-31T23:59:59Z')}`);
  expect({ status: response.status, from: response.json.from, to: response.json.to }).toEqual({ status: 200, from: '0001-01-01T00:00:00.000Z', to: '9999-12-31T23:59:59.000Z' });
});

test.each([
  ...OUT_OF_RANGE.map((at) => ['effective_at', at] as const),
  ['effective_at', FAR_FUTURE] as const,
  ['expires_at', '9999-12-31T23:59:59-14:00'] as const,
  ['expires_at', '0000-01-01T00:00:00Z'] as const,
])('a wallet grant with %s %s is refused, nothing stored', async (field, at) => {
  const customer = await insertCustomer(db);
  const response = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '5.00', source: 'goodwill', [field]: at });
  expect(refused(response)).toEqual(refusal(field));
  expect(await db('wallet_grants as g').join('wallets as w', 'w.id', 'g.wallet_id').where('w.customer_id', customer.id)).toHaveLength(0);
});

test.each(['9999-12-31T23:59:59-14:00', '0000-01-01T00:00:00Z'])('a top-up expiring at %s is refused, nothing stored', async (at) => {
  const customer = await insertCustomer(db);
  const response = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/top-ups`, { amount: '5.00', expires_at: at });
  expect(refused(response)).toEqual(refusal('expires_at'));
  expect(await db('wallet_top_ups').where({ customer_id: customer.id })).toHaveLength(0);
});

test.each(OUT_OF_RANGE)('an imported row anchored at %s is rejected, no workflow started', async (anchor) => {
  const customer = await insertCustomer(db);
  const now = new Date();
  const periodStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString();
  const response = await api.http.call('POST', '/v1/subscriptions/import', {
    rows: [{ external_id: `import-${anchor}`, customer_id: customer.id, plan_code: 'monthly', billing_anchor: anchor, current_period_start: periodStart }],
  });
  expect({ status: response.status, row: response.json.rows[0]?.status, code: response.json.rows[0]?.code, temporal: api.temporalCalls.length }).toEqual({
    status: 200,
    row: 'rejected',
    code: 'validation_failed',
    temporal: 0,
  });
  expect(response.json.rows[0].detail).toMatch(/^billing_anchor: /);
  expect(await db('subscriptions').where({ customer_id: customer.id })).toHaveLength(0);
});

/**
 * Years 0001-0099 are in range, but calendar math (domain/periods.ts addIntervals, through Date.UTC) reads them as
 * 1900-1999: every boundary counted from such an anchor lay 1,900 years later, and placing the row stepped back over
 * those years one period at a time, on the API's only thread (an hourly plan: about 16.6 million steps, some 20 s per
 * row; a minutely one, hours). Refused like the out-of-range anchors, at once.
 */
test('an imported row anchored before year 100 is rejected at once, no workflow started', async () => {
  const customer = await insertCustomer(db);
  await insertPlan(db, { code: 'hourly', billing_interval: 'PT1H', flat_fee: '1.00' });
  const periodStart = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString();
  const response = await api.http.call('POST', '/v1/subscriptions/import', {
    rows: [{ external_id: 'import-year-50', customer_id: customer.id, plan_code: 'hourly', billing_anchor: '0050-01-15T00:00:00Z', current_period_start: periodStart }],
  });
  // Before: placed and its workflow start asked (temporal: 1), after 20 s to 2 min of stepping back from 1950-01-15.
  expect({ row: response.json.rows[0]?.status, code: response.json.rows[0]?.code, temporal: api.temporalCalls.length }).toEqual({ row: 'rejected', code: 'validation_failed', temporal: 0 });
  expect(response.json.rows[0].detail).toMatch(/^billing_anchor: /);
});
