/**
 * Hard feature limits (docs/wallets.md) on the same metric: a plan may declare two metered features over one
 * metric (a tight one and a generous one), and each answers with its own limit. Ingestion keyed the limits by
 * window and metric, so the last declared one replaced the others: the tight limit was never enforced, and the
 * customer was billed for usage its answer said was refused.
 *
 *   features: calls_small (limit 2), calls_big (limit 5), both on one metric
 *   3 calls:  before: 3 accepted (only 5 enforced) -> 3 of 2;   now: 2 accepted, 1 refused
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
const periodStart = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000 + 400);
const periodEnd = new Date(periodStart.getTime() + 7_200_000);
const inPeriod = () => new Date(Date.now() - 60_000).toISOString();

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  expect((await api.http.call('POST', '/v1/metrics', { code: 'shared_calls', name: 'API calls', event_type: 'shared.call', aggregation: 'count' })).status).toBe(201);
  const plan = await api.http.call('POST', '/v1/plans', {
    code: 'shared-pro',
    name: 'Pro',
    currency: 'USD',
    billing_interval: 'PT2H',
    flat_fee: '0',
    charges: [{ metric_code: 'shared_calls', price: { model: 'per_unit', unitPrice: '0.10' } }],
    features: [
      { code: 'calls_small', kind: 'metered', metric_code: 'shared_calls', limit: '2' },
      { code: 'calls_big', kind: 'metered', metric_code: 'shared_calls', limit: '5' },
    ],
  });
  expect(plan.status).toBe(201);
  const planRow = await db('plans').where({ code: 'shared-pro' }).first();
  acme = await insertCustomer(db, { external_id: 'shared-acme' });
  const { row } = await insertSubscription(db, acme, planRow, periodStart);
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: periodEnd });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const call = (id: string) => ({ id, customer: 'shared-acme', type: 'shared.call', timestamp: inPeriod(), properties: {} });

test('every hard limit on a metric holds: the tightest one decides', async () => {
  const posted = await api.http.call('POST', '/v1/events', { events: [call('c-1'), call('c-2'), call('c-3')] });
  expect(posted.status).toBe(200);
  expect(posted.json).toMatchObject({ accepted: 2, rejected: 1, errors: [expect.objectContaining({ index: 2, code: 'entitlement_limit_reached' })] });
  const small = await api.http.call('GET', `/v1/customers/${acme.id}/entitlements/calls_small`);
  expect(small.json).toMatchObject({ usage: '2', limit: '2', has_access: false });
  const big = await api.http.call('GET', `/v1/customers/${acme.id}/entitlements/calls_big`);
  expect(big.json).toMatchObject({ usage: '2', limit: '5', has_access: true });
});
