/**
 * A grant whose `expires_at` had already passed was accepted (any effective_at before it): a grant and a `grant`
 * ledger entry were written, the balance rose, and the wallet workflow's next timer run wrote its `expiry` at once:
 * credit shown for a moment and gone (for a `purchased` grant, paid elsewhere, the money simply lost). As a top-up's
 * expiry, a grant's must lie in the future: 422 validation_failed on `expires_at`, nothing written.
 */
import type { Database } from '../../store/database';
import { runWalletTimers } from '../../store/wallet-topups';
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

test('a grant that expired before it was asked for is refused with 422, nothing written', async () => {
  const customer = await insertCustomer(db, { currency: 'USD' });
  const before = { wallets: await count('wallets'), grants: await count('wallet_grants'), ledger: await count('wallet_ledger') };
  const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
  const dayAgo = new Date(Date.now() - 86_400_000).toISOString();

  const expired = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '40.00', source: 'purchased', effective_at: dayAgo, expires_at: hourAgo });
  const timers = await runWalletTimers(db, customer.id, new Date());
  expect({ status: expired.status, type: expired.headers.get('content-type'), code: expired.json?.code, errors: expired.json?.errors, expiredAtOnce: timers.expired }).toEqual({
    status: 422,
    type: expect.stringContaining('application/problem+json'),
    code: 'validation_failed',
    errors: [{ path: 'expires_at', message: expect.any(String) }],
    expiredAtOnce: 0,
  });
  expect({ wallets: await count('wallets'), grants: await count('wallet_grants'), ledger: await count('wallet_ledger') }).toEqual(before);

  const ahead = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '40.00', source: 'purchased', effective_at: dayAgo, expires_at: '2030-01-01T00:00:00Z' });
  expect(ahead.status).toBe(201);
});
