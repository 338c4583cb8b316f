/**
 * The wallet's alert and recharge thresholds are money in the wallet's currency, as the overdraft limit and the
 * recharge amount are. A threshold with more decimals than the currency has was stored as given and answered rounded:
 * `low_balance_threshold: "1.4"` in JPY was answered "1" (and put in `wallet.low_balance` as the threshold), while the
 * balance was compared with 1.4, so a balance of 1 JPY was reported as below a threshold of 1. Refused with 422,
 * nothing written, as the other settings are.
 */
import type { Database } from '../../store/database';
import { findWallet } from '../../store/wallets';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test.each([
  ['JPY', { low_balance_threshold: '1.4' }],
  ['JPY', { recharge_threshold: '0.5', recharge_amount: '1000' }],
  ['USD', { low_balance_threshold: '10.001' }],
  ['KWD', { recharge_threshold: '5.0005', recharge_amount: '10.000' }],
])('a %s wallet threshold with more decimals than the currency, %j, is refused with 422, nothing written', async (currency, settings) => {
  const customer = await insertCustomer(db, { currency });
  const answer = await api.http.call('PUT', `/v1/customers/${customer.id}/wallet`, settings);
  expect({ status: answer.status, type: answer.headers.get('content-type'), code: answer.json?.code, body: answer.status === 200 ? answer.json : undefined }).toEqual({
    status: 422,
    type: expect.stringContaining('application/problem+json'),
    code: 'validation_failed',
    body: undefined,
  });
  expect(await findWallet(db, customer.id, currency)).toBeUndefined();
});

test('thresholds with the currency digits are stored as given', async () => {
  const customer = await insertCustomer(db, { currency: 'KWD' });
  const answer = await api.http.call('PUT', `/v1/customers/${customer.id}/wallet`, { low_balance_threshold: '1.250', recharge_threshold: '0.5', recharge_amount: '10.125' });
  expect({ status: answer.status, low: answer.json.low_balance_threshold, threshold: answer.json.recharge_threshold, amount: answer.json.recharge_amount }).toEqual({ status: 200, low: '1.250', threshold: '0.500', amount: '10.125' });
});
