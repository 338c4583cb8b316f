/**
 * Every money value of a plan fits NUMERIC(30, 12) on its own (18 digits before the point), but a period bills
 * several of them on one invoice: the recurring fees, plus at least the minimum commitment (or each charge's
 * minimum) even with no usage. A plan whose invoice with no usage cannot fit an invoice total (below 10^18) could
 * never bill: on the real stack `flat_fee` 999999999999999999 + a flat charge of 1 was published (201) and its
 * subscription went to needs_attention on its first invoice (numeric_field_overflow); 6e17 fee + 6e17 commitment
 * billed the first period and stopped at the first renewal. Such a plan is refused (422 invalid_price), nothing
 * stored. Over real HTTP and Postgres, no Temporal.
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
  expect((await api.http.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'call', aggregation: 'count' })).status).toBe(201);
  expect((await api.http.call('POST', '/v1/metrics', { code: 'seats', name: 'Seats', event_type: 'seat', aggregation: 'count' })).status).toBe(201);
});

afterAll(async () => {
  await api.close();
  await db.destroy();
});

const plan = (code: string, fields: Record<string, unknown>) => ({ code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '0', ...fields });
const perCall = { metric_code: 'calls', price: { model: 'per_unit', unitPrice: '1' } };

test.each([
  ['fee-and-flat-charge', { flat_fee: '999999999999999999', charges: [{ metric_code: 'seats', price: { model: 'flat', amount: '1' } }] }],
  ['fee-and-commitment', { flat_fee: '600000000000000000', minimum_commitment: '600000000000000000', charges: [perCall] }],
  ['fee-and-charge-minimum', { flat_fee: '600000000000000000', charges: [{ ...perCall, min_amount: '600000000000000000' }] }],
  ['two-charge-minimums', { charges: [{ ...perCall, min_amount: '600000000000000000' }, { metric_code: 'seats', price: { model: 'per_unit', unitPrice: '1' }, min_amount: '600000000000000000' }] }],
])('a plan %s whose invoice with no usage overflows an invoice total is refused with 422 invalid_price, nothing stored', async (code, fields) => {
  const refused = await api.http.call('POST', '/v1/plans', plan(code, fields));
  expect([refused.status, refused.type.split(';')[0], refused.json.code]).toEqual([422, 'application/problem+json', 'invalid_price']);
  expect(await db('plans').where({ code })).toEqual([]);
});

test.each([
  ['largest-fee', { flat_fee: '999999999999999999.99', charges: [perCall] }],
  ['commitment-counting-the-fee', { flat_fee: '600000000000000000', minimum_commitment: '600000000000000000', commitment_includes_fees: true, charges: [perCall] }],
  ['fee-and-credit', { flat_fee: '600000000000000000', credit_bucket: '600000000000000000', charges: [perCall] }],
])('a plan %s whose invoice with no usage fits is published', async (code, fields) => {
  expect((await api.http.call('POST', '/v1/plans', plan(code, fields))).status).toBe(201);
});
