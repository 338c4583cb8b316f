/**
 * A plan's recurring fees (flat_fee and flat charges) are money billed as they are: with more decimals than the
 * currency has they would be billed rounded (10.005 USD shows and bills as 10.01) while proration credits the
 * unrounded fee (half of 10.005 = 5.0025 -> 5.00, not the 5.01 half of what was billed). Refused at creation, like a
 * credit bucket or commitment with too many decimals, and nothing is stored. Over real HTTP and Postgres, no Temporal.
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
  expect((await api.http.call('POST', '/v1/metrics', { code: 'seats', name: 'Seats', event_type: 'seat', aggregation: 'count' })).status).toBe(201);
});

afterAll(async () => {
  await api.close();
  await db.destroy();
});

const plan = (code: string, fields: Record<string, unknown>) => ({ code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '10.00', ...fields });

test.each([
  ['usd-flat-fee', { flat_fee: '10.005' }, 'flat_fee'],
  ['jpy-flat-fee', { currency: 'JPY', flat_fee: '980.5' }, 'flat_fee'],
  ['kwd-flat-fee', { currency: 'KWD', flat_fee: '1.2345' }, 'flat_fee'],
  ['usd-flat-charge', { charges: [{ metric_code: 'seats', price: { model: 'flat', amount: '4.999' } }] }, 'charges.0.price.amount'],
])('a plan %s with more decimals than its currency is refused with 422 invalid_price, nothing stored', async (code, fields, path) => {
  const refused = await api.http.call('POST', '/v1/plans', plan(code, fields));
  expect([refused.status, refused.type.split(';')[0], refused.json.code]).toEqual([422, 'application/problem+json', 'invalid_price']);
  expect(refused.json.errors).toEqual([expect.objectContaining({ path })]);
  expect((await api.http.call('GET', `/v1/plans/${code}`)).json.code).toBe('plan_not_found');
  expect(await db('plans').where({ code })).toEqual([]);
});

test.each([
  ['usd-ok', { flat_fee: '10.01', charges: [{ metric_code: 'seats', price: { model: 'flat', amount: '4.99' } }] }],
  ['jpy-ok', { currency: 'JPY', flat_fee: '981' }],
  ['kwd-ok', { currency: 'KWD', flat_fee: '1.234' }],
  ['trailing-zeros-ok', { flat_fee: '10.000' }],
])('a plan %s whose fees fit the currency is published', async (code, fields) => {
  expect((await api.http.call('POST', '/v1/plans', plan(code, fields))).status).toBe(201);
});
