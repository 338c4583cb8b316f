/**
 * The entitlement answer of a metered feature says whether the next call would be taken. Past the plan's hard cap
 * (spending cap, migration 0730: the period is a capped stretch) ingestion refuses every event of the plan's types
 * stamped in the period as usage_cap_reached, yet GET .../entitlements/:feature answered has_access true with room
 * left under the limit: store/entitlements.ts `grantsFeaturesSql` and the limit read know usage blocks and usage ends,
 * not caps. A boolean feature is no usage and stays granted.
 *
 *   period [now - 1 h, now + 1 h) capped from its start; limit 3 calls; 1 call stamped now
 *   the call: refused usage_cap_reached | expected: calls has_access false, sso has_access true
 *   before: calls has_access true, usage 0 of 3 (the list too)
 *
 * Fixed: the answer judges a metered feature by its subscription's cap of the metric's type at `now`, as usageStopAt
 * judges events (store/entitlements.ts `refusedByCap`), while boolean features stay granted.
 */
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
const now = new Date(Math.floor(Date.now() / 60_000) * 60_000);
const minutes = (n: number) => new Date(now.getTime() + n * 60_000);

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers, now: () => now });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test('capped: the metered feature answers no access, as ingestion refuses its calls; the boolean one stays', async () => {
  expect((await api.http.call('POST', '/v1/metrics', { code: 'cap_calls', name: 'Calls', event_type: 'cap.call', aggregation: 'count' })).status).toBe(201);
  const created = await api.http.call('POST', '/v1/plans', {
    code: 'cap-limited',
    name: 'Limited',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metric_code: 'cap_calls', price: { model: 'per_unit', unitPrice: '1.00' } }],
    features: [
      { code: 'calls', kind: 'metered', metric_code: 'cap_calls', limit: '3' },
      { code: 'sso', kind: 'boolean' },
    ],
  });
  expect(created.status).toBe(201);
  const plan = await db('plans').where({ code: 'cap-limited' }).first();
  const customer = await insertCustomer(db, { external_id: 'cap' });
  const { row } = await insertSubscription(db, customer, plan, minutes(-60));
  // As the spending check leaves a capped period (store/subscription-billing.ts `capUsageUntil`).
  await db('subscriptions')
    .where({ id: row.id })
    .update({
      status: 'active',
      current_period_start: minutes(-60),
      current_period_end: minutes(60),
      usage_capped_until: minutes(60),
      usage_capped_stretches: db.raw('tstzmultirange(tstzrange(?::timestamptz, ?::timestamptz))', [minutes(-60).toISOString(), minutes(60).toISOString()]),
    });
  const sent = await api.http.call('POST', '/v1/events', { events: [{ id: 'cap-1', customer: 'cap', type: 'cap.call', timestamp: now.toISOString(), properties: {} }] });
  const calls = await api.http.call('GET', `/v1/customers/${customer.id}/entitlements/calls`);
  const sso = await api.http.call('GET', `/v1/customers/${customer.id}/entitlements/sso`);
  expect({
    refused: (sent.json.errors as { code: string }[]).map((error) => error.code),
    calls: calls.json.has_access,
    sso: sso.json.has_access,
  }).toEqual({ refused: ['usage_cap_reached'], calls: false, sso: true });
});

// The list answers from the general path (no one-statement answer): the same judgement per feature.
test('capped: the list answers the metered feature no access and keeps the boolean one', async () => {
  const customer = await db('customers').where({ external_id: 'cap' }).first();
  const all = await api.http.call('GET', `/v1/customers/${customer.id}/entitlements`);
  const access = Object.fromEntries((all.json.data as { feature: string; has_access: boolean }[]).map((entry) => [entry.feature, entry.has_access]));
  expect(access).toEqual({ calls: false, sso: true });
});
