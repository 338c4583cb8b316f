/**
 * A purchase of credit (a top-up or an automatic recharge) is charged first and granted after: a grant that cannot be
 * written then, because the wallet's balance would pass what its NUMERIC(30, 12) column holds, leaves a paid invoice
 * with no credit (settleTopUp fails on every retry of the wallet workflow). The top-up route counts the purchases still
 * pending (wallet-balance-overflow.test.ts); a grant and a recharge did not:
 *  - a grant accepted while a top-up was pending took the room the top-up had been promised;
 *  - a recharge crossing requested its amount whatever the balance, so one set at the edge bought credit it could never
 *    grant.
 * Now a grant that does not fit beside the pending purchases is refused (422, nothing written), a recharge that
 * would not fit is not bought (no top-up requested) until the balance leaves room for it, and a recharge amount no
 * balance could take is refused when it is set.
 */
import type { Database } from '../../store/database';
import { observeWalletBalance, prepareTopUpInvoice, requestTopUp, settleTopUp } from '../../store/wallet-topups';
import { createGrant, ensureWallet, findWallet, updateWalletSettings } from '../../store/wallets';
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

const count = async (table: string): Promise<number> => Number((await db(table).count<{ count: string }[]>('* as count'))[0].count);

test('a grant that would not fit beside a pending top-up is refused, and the paid top-up is granted', async () => {
  const customer = await insertCustomer(db, { external_id: 'pending-top-up', currency: 'USD' });
  const { row: topUp } = await requestTopUp(db, { customerId: customer.id, currency: 'USD', kind: 'top_up', requestKey: 'api:pending', amount: '999999999999999000.00', requestedBy: 'test' });
  const grants = await count('wallet_grants');

  const grant = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '1000.00', source: 'goodwill' });
  expect({ status: grant.status, type: grant.headers.get('content-type'), code: grant.json?.code }).toEqual({ status: 422, type: expect.stringContaining('application/problem+json'), code: 'validation_failed' });
  expect(await count('wallet_grants')).toBe(grants);

  // The top-up is charged (paid) and settles into its grant.
  const invoice = await prepareTopUpInvoice(db, topUp.id);
  await db('invoices').where({ id: invoice.id }).update({ status: 'paid' });
  const settled = await settleTopUp(db, topUp.id, new Date());
  expect(settled.status).toBe('paid');
  expect((await findWallet(db, customer.id, 'USD'))!.balance).toBe('999999999999999000.000000000000');
});

test('a recharge crossing whose amount would not fit the balance buys nothing until it does', async () => {
  const customer = await insertCustomer(db, { external_id: 'recharge-at-edge', currency: 'USD' });
  const wallet = await ensureWallet(db, customer.id, 'USD');
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'seed', source: 'promotional', amount: '500.00', effectiveAt: new Date() });
  await updateWalletSettings(db, wallet.id, { rechargeThreshold: '999999999999999999', rechargeAmount: '999999999999999999.00' });

  const crossing = await observeWalletBalance(db, wallet, new Date());
  // Bought, this recharge would be charged and its grant (500.00 + 999999999999999999.00) never written.
  expect({ recharge: crossing.rechargeTopUpId, topUps: await db('wallet_top_ups').where({ customer_id: customer.id }).count<{ count: string }[]>('* as count') }).toEqual({ recharge: null, topUps: [{ count: '0' }] });

  // Still armed: once the recharge fits (here a smaller amount), the next observation buys it.
  await updateWalletSettings(db, wallet.id, { rechargeAmount: '999999999999999000.00' });
  const next = await observeWalletBalance(db, wallet, new Date());
  expect(next.rechargeTopUpId).not.toBeNull();
  expect((await db('wallet_top_ups').where({ id: next.rechargeTopUpId! }).first()).amount).toBe('999999999999999000.000000000000');
});

test('a recharge amount larger than any wallet balance is refused with 422, nothing written', async () => {
  const customer = await insertCustomer(db, { external_id: 'recharge-never-fits', currency: 'USD' });
  const answer = await api.http.call('PUT', `/v1/customers/${customer.id}/wallet`, { recharge_threshold: '10.00', recharge_amount: '999999999999999999.99' });
  expect({ status: answer.status, code: answer.json?.code, path: answer.json?.errors?.[0]?.path }).toEqual({ status: 422, code: 'validation_failed', path: 'recharge_amount' });
  expect(await findWallet(db, customer.id, 'USD')).toBeUndefined();
});
