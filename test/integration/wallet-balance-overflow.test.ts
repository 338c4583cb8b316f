/**
 * A grant or top-up that would take the wallet's balance past what its NUMERIC(30, 12) column holds (18 digits
 * before the point) is refused at the edge with a problem document, and nothing is written. Each amount alone
 * fits, so the API accepted it: a grant answered a 500 from Postgres' numeric overflow, and a top-up was invoiced
 * and charged, then its grant could never be written (paid, never granted, the wallet workflow retrying forever).
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

test('a grant or a top-up past the largest balance a wallet holds is refused with 422, nothing written', async () => {
  const customer = await insertCustomer(db, { external_id: 'overflow', currency: 'USD' });
  const big = { amount: '900000000000000000.00', source: 'promotional', currency: 'USD' };
  expect((await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, big)).status).toBe(201);
  const grants = async () => Number((await db('wallet_grants').count<{ count: string }[]>('* as count'))[0].count);
  const before = await grants();

  const second = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, big);
  expect({ status: second.status, type: second.headers.get('content-type'), code: second.json?.code }).toEqual({ status: 422, type: expect.stringContaining('application/problem+json'), code: 'validation_failed' });
  expect(await grants()).toBe(before);

  const topUp = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/top-ups`, { amount: '900000000000000000.00', currency: 'USD' });
  expect({ status: topUp.status, code: topUp.json?.code }).toMatchObject({ status: 422 });
  expect(Number((await db('wallet_top_ups').where({ customer_id: customer.id }).count<{ count: string }[]>('* as count'))[0].count)).toBe(0);
  expect(Number((await findWallet(db, customer.id, 'USD'))!.balance)).toBe(9e17);
});
