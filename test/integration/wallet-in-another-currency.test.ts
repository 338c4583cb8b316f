/**
 * A customer is billed in one currency: every subscription's plan is in the customer's currency (currency_mismatch
 * otherwise), so every invoice a wallet could pay is too. A wallet in another currency can pay nothing, ever. Yet a
 * top-up, a grant or wallet settings naming another currency were accepted: a USD customer's `"currency": "EUR"`
 * top-up was charged for credit no invoice would draw, and auto-recharge set on the (empty) EUR wallet bought its
 * amount at once, and again at every crossing. Refused with 422 validation_failed (path `currency`), nothing written
 * and no workflow started; the customer's own currency, spelled out, works as before. Reading a wallet in another
 * currency (GET ?currency=) still answers the empty wallet.
 */
import type { Database } from '../../store/database';
import { observeCustomerWallets } from '../../store/wallet-topups';
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
const written = async () => ({ wallets: await count('wallets'), grants: await count('wallet_grants'), topUps: await count('wallet_top_ups'), ledger: await count('wallet_ledger') });

test.each([
  ['POST', 'wallet/top-ups', { amount: '50.00', currency: 'EUR' }],
  ['POST', 'wallet/grants', { amount: '50.00', currency: 'EUR', source: 'purchased' }],
  ['PUT', 'wallet', { currency: 'EUR', recharge_threshold: '10.00', recharge_amount: '50.00' }],
])('%s %s in a currency other than the customer\'s is refused with 422, nothing written', async (method, path, body) => {
  const customer = await insertCustomer(db, { currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const before = await written();
  const answer = await api.http.call(method, `/v1/customers/${customer.id}/${path}`, body);
  // What the EUR wallet would do now: an auto-recharge set on it buys at once.
  const observed = await observeCustomerWallets(db, customer.id, new Date());
  expect({ status: answer.status, type: answer.headers.get('content-type'), code: answer.json?.code, errors: answer.json?.errors, recharge: observed.rechargeRequested }).toEqual({
    status: 422,
    type: expect.stringContaining('application/problem+json'),
    code: 'validation_failed',
    errors: [{ path: 'currency', message: expect.stringContaining('USD') }],
    recharge: false,
  });
  expect(await written()).toEqual(before);
  expect(api.temporalCalls).toEqual([]);
});

test("the customer's own currency, named, is a grant as before; another currency's wallet reads as empty", async () => {
  const customer = await insertCustomer(db, { currency: 'JPY' });
  const grant = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '500', currency: 'JPY', source: 'goodwill' });
  expect({ status: grant.status, amount: grant.json?.amount }).toEqual({ status: 201, amount: '500' });
  const other = await api.http.call('GET', `/v1/customers/${customer.id}/wallet?currency=EUR`);
  expect({ status: other.status, has_wallet: other.json?.has_wallet, balance: other.json?.balance }).toEqual({ status: 200, has_wallet: false, balance: '0.00' });
});
