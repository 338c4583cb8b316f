/**
 * A plan's hard cap (spending limit): once the period's spend reaches it, ingestion refuses the customer's usage
 * (`usage_cap_reached`) until the period ends. It refused a correction too (a negative value of an `allow_negative`
 * sum), although a correction only lowers the spend: the customer stayed billed for the usage it took back (after
 * the period closes a correction is only late usage, waiting for a re-rating).
 *
 *   cap 50.00, 60 calls at 1.00 -> capped     correction -10:  before: refused (usage_cap_reached), period bills 60.00
 *                                                              now: accepted, the period's usage is 50 (50.00)
 *   a positive event, a zero one and an event of a metric without corrections stay refused
 */
import type { Database } from '../../store/database';
import type { CustomerRow } from '../../store/customers';
import { capUsageUntil } from '../../store/subscription-billing';
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
    { code: 'capc_calls', name: 'Calls', event_type: 'capc.call', aggregation: 'sum', property: 'n', allow_negative: true },
    { code: 'capc_mb', name: 'Storage', event_type: 'capc.mb', aggregation: 'sum', property: 'mb' },
  ]) {
    expect((await api.http.call('POST', '/v1/metrics', metric)).status).toBe(201);
  }
  const plan = await api.http.call('POST', '/v1/plans', {
    code: 'capc-pro',
    name: 'Pro',
    currency: 'USD',
    billing_interval: 'PT2H',
    flat_fee: '0',
    charges: [
      { metric_code: 'capc_calls', price: { model: 'per_unit', unitPrice: '1.00' } },
      { metric_code: 'capc_mb', price: { model: 'per_unit', unitPrice: '0.10' } },
    ],
  });
  expect(plan.status).toBe(201);
  // The API has no field for a hard cap: plans get it in their settings.
  await db('plans').where({ id: plan.json.id }).update({ settings: JSON.stringify({ ...plan.json.settings, hardCap: '50.00' }) });
  const planRow = await db('plans').where({ code: 'capc-pro' }).first();
  acme = await insertCustomer(db, { external_id: 'capc-acme' });
  const { row } = await insertSubscription(db, acme, planRow, periodStart);
  subscriptionId = row.id;
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: periodEnd });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const calls = (id: string, n: string | number) => ({ id, customer: 'capc-acme', type: 'capc.call', timestamp: inPeriod(), properties: { n } });

async function storedCalls(): Promise<string[]> {
  const rows: { properties: { n: string | number } }[] = await db('usage_events').where({ customer_id: acme.id, event_type: 'capc.call' }).orderBy('id').select('properties');
  return rows.map((row) => String(row.properties.n));
}

test('past the cap, a correction is accepted and everything that could add spend is refused', async () => {
  expect((await api.http.call('POST', '/v1/events', calls('c-1', 60))).json).toMatchObject({ accepted: 1 });
  // The spending check found 60.00 of a 50.00 cap: the period is capped.
  await capUsageUntil(db, subscriptionId, { from: periodStart, until: periodEnd });

  const correction = await api.http.call('POST', '/v1/events', calls('fix-1', '-10'));
  expect(correction.status).toBe(200);
  expect(correction.json).toMatchObject({ accepted: 1, rejected: 0 });

  const batch = await api.http.call('POST', '/v1/events', {
    events: [calls('c-2', 5), calls('c-3', '0'), { id: 'mb-1', customer: 'capc-acme', type: 'capc.mb', timestamp: inPeriod(), properties: { mb: '1' } }, calls('fix-2', '-2.5')],
  });
  expect(batch.status).toBe(200);
  expect(batch.json.errors.map((error: { index: number; code: string }) => [error.index, error.code])).toEqual([
    [0, 'usage_cap_reached'],
    [1, 'usage_cap_reached'],
    [2, 'usage_cap_reached'],
  ]);
  expect(await storedCalls()).toEqual(['60', '-10', '-2.5']);
  const preview = await api.http.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
  expect(preview.json.projected.usage_total).toBe('47.50');
});

/**
 * Past the cap, a reversal (`reverses`) of a correction adds the correction's value back: it adds spend like a
 * positive event and is refused like one. Before, reversals were never held to the cap: after the test above (47.50
 * of a 50.00 cap, capped), reversing fix-1 (-10) was accepted and the period billed 57.50, while +10 sent in its
 * place was refused. Reversing an increase (it lowers the spend) is still accepted.
 */
test('past the cap, reversing a correction is refused like the increase it is', async () => {
  const plan = await db('plans').where({ code: 'capc-pro' }).first();
  await db('plans').where({ id: plan.id }).update({ settings: JSON.stringify({ ...plan.settings, disputeWindow: 'P1D' }) });
  const reversal = await api.http.call('POST', '/v1/events', { id: 'fix-1-back', customer: 'capc-acme', type: 'capc.call', timestamp: inPeriod(), properties: {}, reverses: 'fix-1' });
  expect(reversal.status).toBe(422);
  expect(reversal.json.errors).toEqual([expect.objectContaining({ index: 0, code: 'usage_cap_reached' })]);
  expect((await api.http.call('GET', `/v1/subscriptions/${subscriptionId}/usage`)).json.projected.usage_total).toBe('47.50');
  const lowering = await api.http.call('POST', '/v1/events', { id: 'c-1-back', customer: 'capc-acme', type: 'capc.call', timestamp: inPeriod(), properties: {}, reverses: 'c-1' });
  expect(lowering.json).toMatchObject({ accepted: 1, rejected: 0 });
  expect((await api.http.call('GET', `/v1/subscriptions/${subscriptionId}/usage`)).json.projected.usage_total).toBe('0.00');
});
