/**
 * A subscription's hard limits hold from its start, also before its workflow has stored its first period. POST
 * /v1/subscriptions inserts the row `scheduled` with no period (store/subscriptions.ts `insertScheduledSubscription`);
 * the workflow writes the status and, with the opening invoice, the first period, some time after `start_at` (a
 * moment on a quiet worker, minutes or hours behind a backlog). Meanwhile ingestion accepts every event stamped from
 * `start_at` on and the first period's close bills them all, but no limit holds: store/entitlements.ts
 * `HOLDS_LIMITS_SQL` leaves `scheduled` out ("not started"), and `hardLimitsOf` needs a stored period for its window.
 *
 *   the row as the create route leaves it: scheduled, start_at = now - 1 min, no period; limit 3 calls at 1.00
 *   5 calls stamped now: expected 3 accepted, 2 refused entitlement_limit_reached
 *   before: 5 accepted, all billed by the first period (5.00 where the plan caps the feature at 3 calls), and the
 *           answer listed no feature
 *
 * Fixed: a started `scheduled` row holds its limits and grants its features; before its first period is stored, the
 * window is the one the workflow will store (store/entitlements.ts `limitPeriodOf`: [start, start + interval), or the
 * trial's span).
 */
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
const now = new Date(Math.floor(Date.now() / 60_000) * 60_000);

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers, now: () => now });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test('started, its first period not stored yet: the calls are held to the limit', async () => {
  expect((await api.http.call('POST', '/v1/metrics', { code: 'bfp_calls', name: 'Calls', event_type: 'bfp.call', aggregation: 'count' })).status).toBe(201);
  const created = await api.http.call('POST', '/v1/plans', {
    code: 'bfp-limited',
    name: 'Limited',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metric_code: 'bfp_calls', price: { model: 'per_unit', unitPrice: '1.00' } }],
    features: [{ code: 'calls', kind: 'metered', metric_code: 'bfp_calls', limit: '3' }],
  });
  expect(created.status).toBe(201);
  const plan = await db('plans').where({ code: 'bfp-limited' }).first();
  const customer = await insertCustomer(db, { external_id: 'bfp' });
  // The row the create route inserts: `scheduled`, start_at, no period (the workflow has not opened it yet).
  const { row } = await insertSubscription(db, customer, plan, new Date(now.getTime() - 60_000));
  expect([row.status, row.current_period_start]).toEqual(['scheduled', null]);
  const calls = [1, 2, 3, 4, 5].map((n) => ({ id: `bfp-${n}`, customer: 'bfp', type: 'bfp.call', timestamp: now.toISOString(), properties: {} }));
  const sent = await api.http.call('POST', '/v1/events', { events: calls });
  expect({ accepted: sent.json.accepted ?? 0, refused: [...new Set(((sent.json.errors ?? []) as { code: string }[]).map((error) => error.code))] }).toEqual({
    accepted: 3,
    refused: ['entitlement_limit_reached'],
  });
});

// Before, the answer listed nothing (scheduled granted no feature) while the calls were accepted and billed.
test('started, its first period not stored yet: the answer grants the feature and counts the calls', async () => {
  const customer = await db('customers').where({ external_id: 'bfp' }).first();
  const answer = await api.http.call('GET', `/v1/customers/${customer.id}/entitlements/calls`);
  expect({ kind: answer.json.kind, has_access: answer.json.has_access, usage: answer.json.usage }).toEqual({ kind: 'metered', has_access: false, usage: '3' });
});
