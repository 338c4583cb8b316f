/**
 * A grant of nothing ("0", "0.00") was accepted: it wrote a zero grant and a `grant` ledger entry, and flipped the
 * customer's `has_wallet` to true (a wallet holding a grant of its own), though it can pay nothing, ever. A grant's
 * amount must be greater than zero (as a top-up's); a zero one is refused with 422 and nothing is written.
 */
import type { Database } from '../../store/database';
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

test.each(['0', '0.00', '-0'])('a grant of %s is refused with 422, nothing written, has_wallet stays false', async (amount) => {
  const customer = await insertCustomer(db, { currency: 'USD' });
  const before = { wallets: await count('wallets'), grants: await count('wallet_grants'), ledger: await count('wallet_ledger') };

  const zero = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount, source: 'goodwill' });
  expect({ status: zero.status, type: zero.headers.get('content-type'), code: zero.json?.code }).toEqual({
    status: 422,
    type: expect.stringContaining('application/problem+json'),
    code: 'validation_failed',
  });
  expect({ wallets: await count('wallets'), grants: await count('wallet_grants'), ledger: await count('wallet_ledger') }).toEqual(before);
  const wallet = await api.http.call('GET', `/v1/customers/${customer.id}/wallet`);
  expect(wallet.json?.has_wallet).toBe(false);
});

test('a grant of the smallest amount the currency has is still a grant', async () => {
  const customer = await insertCustomer(db, { currency: 'USD' });
  const cent = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '0.01', source: 'goodwill' });
  expect({ status: cent.status, amount: cent.json?.amount }).toEqual({ status: 201, amount: '0.01' });
});
