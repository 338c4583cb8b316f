/**
 * Re-rating and reversal credits tell a period's usage lines apart by their identity (domain/rerating.ts lineKey:
 * `usage:<metric>`, plus the combination for a dimensional line). Two usage charges on one metric gave two lines of
 * one identity: each recomputed line was compared with the sum of both billed lines. On the real stack a plan with
 * a 1.00 fee and a 10 % commission on the same `resolutions` metric billed March 2.00 + 15.00 = 17.00; reversing
 * one 50.00 outcome (worth 1.00 + 5.00 = 6.00) put -16.00 and -7.00 on April's invoice: 23.00 credited, more than
 * was ever paid. Such a plan is refused (422 charge_metric_mismatch) and nothing is stored; a flat charge beside a
 * usage charge of the same metric, and a plain charge beside a dimensional one, keep distinct identities and pass.
 * Over real HTTP and Postgres, no Temporal.
 */
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  expect((await api.http.call('POST', '/v1/metrics', { code: 'resolutions', name: 'Resolutions', event_type: 'ticket.resolved', aggregation: 'count', property: 'value' })).status).toBe(201);
  expect((await api.http.call('POST', '/v1/metrics', { code: 'tokens', name: 'Tokens', event_type: 'llm', aggregation: 'sum', property: 'tokens', group_by: ['model'] })).status).toBe(201);
});

afterAll(async () => {
  await api.close();
  await db.destroy();
});

const plan = (code: string, charges: unknown[]) => ({ code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '0', dispute_window: 'P14D', charges });
const fee = { metric_code: 'resolutions', display_name: 'Resolution fee', price: { model: 'per_unit', unitPrice: '1.00' } };
const commission = { metric_code: 'resolutions', display_name: 'Commission', price: { model: 'percentage', rate: '0.10' } };
const byModel = (unitPrice: string) => ({ metric_code: 'tokens', dimensions: { prices: [{ match: { model: 'large' }, price: { model: 'per_unit', unitPrice } }], default_price: { model: 'per_unit', unitPrice: '0.001' } } });

test.each([
  ['fee-and-commission', [fee, commission], 'charges.1.metric_code'],
  ['same-price-twice', [fee, { ...fee, display_name: 'Again' }], 'charges.1.metric_code'],
  ['two-dimensional', [byModel('0.01'), { metric_code: 'tokens', price: { model: 'per_unit', unitPrice: '0' } }, byModel('0.02')], 'charges.2.metric_code'],
])('a plan %s pricing one metric twice is refused with 422 charge_metric_mismatch, nothing stored', async (code, charges, path) => {
  const refused = await api.http.call('POST', '/v1/plans', plan(code, charges));
  expect([refused.status, refused.type.split(';')[0], refused.json.code]).toEqual([422, 'application/problem+json', 'charge_metric_mismatch']);
  expect(refused.json.errors).toEqual([expect.objectContaining({ path })]);
  expect(await db('plans').where({ code })).toEqual([]);
});

test.each([
  ['flat-beside-usage', [{ metric_code: 'resolutions', price: { model: 'flat', amount: '5.00' } }, fee]],
  ['plain-beside-dimensional', [byModel('0.01'), { metric_code: 'tokens', display_name: 'Platform fee', price: { model: 'per_unit', unitPrice: '0.0001' } }]],
  ['two-metrics', [fee, byModel('0.01')]],
])('a plan %s whose usage lines stay distinct is published', async (code, charges) => {
  expect((await api.http.call('POST', '/v1/plans', plan(code, charges))).status).toBe(201);
});
