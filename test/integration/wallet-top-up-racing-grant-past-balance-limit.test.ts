/**
 * A top-up and a grant at once on a wallet near the largest balance it holds (MAX_WALLET_BALANCE), each fitting alone:
 * checked before the wallet lock, both passed, and the paid top-up's grant could never be written (numeric overflow at
 * every settle: paid, never granted). requestTopUp's `withinBalanceLimit` checks the room under the wallet lock, as
 * createGrant's does, so the two serialize: the second is refused (WalletBalanceLimitError), nothing written for it.
 *
 * Timeline: a test transaction holds the wallet row lock; the purchase and the grant queue on it; the lock is released.
 */
import type { Knex } from 'knex';
import { Dec, toDecimal } from '../../domain/money';
import type { Database } from '../../store/database';
import { requestTopUp } from '../../store/wallet-topups';
import { createGrant, findWallet, MAX_WALLET_BALANCE, WalletBalanceLimitError } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { insertCustomer } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

const waitingOnLocks = async (): Promise<number> =>
  Number((await db.raw(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0].n);

test.each(['a grant', 'a second top-up'])('a top-up and %s racing for the last room: one recorded, the other refused', async (other) => {
  const customer = await insertCustomer(db, { currency: 'USD' });
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'start', source: 'promotional', amount: MAX_WALLET_BALANCE.minus(100).toFixed(2), effectiveAt: new Date() });
  const wallet = (await findWallet(db, customer.id, 'USD'))!;

  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const holdsLock = new Promise<void>((resolve) => (locked = resolve));
  const holding = db.transaction(async (trx: Knex.Transaction) => {
    await trx('wallets').where({ id: wallet.id }).forUpdate().first();
    locked();
    await released;
  });
  // The racers start once the lock is held: started before, one could take the lock first and finish, and the wait
  // for two waiters below timed out with the holder's transaction left open (a clean-clone CI run).
  await holdsLock;
  const topUp = (key: string) => requestTopUp(db, { customerId: customer.id, currency: 'USD', kind: 'top_up', requestKey: key, amount: '60.00', requestedBy: 'test', withinBalanceLimit: true });
  const racing = [
    topUp('first'),
    other === 'a grant'
      ? createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'racing', source: 'goodwill', amount: '60.00', effectiveAt: new Date(), withinBalanceLimit: true })
      : topUp('second'),
  ].map((attempt) => attempt.then(() => 'written', (error: unknown) => (error instanceof WalletBalanceLimitError ? 'refused' : `failed: ${String(error)}`)));
  await eventually(async () => (await waitingOnLocks()) >= 2, 'both waiting on the wallet lock', { timeoutMs: 15_000, intervalMs: 50 });
  release();
  await holding;
  const outcomes = (await Promise.all(racing)).sort(); // which one the lock lets through first is not fixed

  const balance = toDecimal(String((await findWallet(db, customer.id, 'USD'))!.balance));
  const pending = (await db('wallet_top_ups').where({ wallet_id: wallet.id, status: 'pending' }).select('amount')).reduce((sum: Dec, row: { amount: string }) => sum.plus(toDecimal(String(row.amount))), toDecimal('0'));
  expect({ outcomes, grantable: balance.plus(pending).lte(MAX_WALLET_BALANCE) }).toEqual({ outcomes: ['refused', 'written'], grantable: true });
});

test('a repeat of a recorded top-up is that top-up, even once the wallet has no room left', async () => {
  const customer = await insertCustomer(db, { currency: 'USD' });
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'start', source: 'promotional', amount: MAX_WALLET_BALANCE.minus(100).toFixed(2), effectiveAt: new Date() });
  const request = { customerId: customer.id, currency: 'USD', kind: 'top_up' as const, requestKey: 'once', amount: '60.00', requestedBy: 'test', withinBalanceLimit: true };
  const first = await requestTopUp(db, request);
  const repeat = await requestTopUp(db, request);
  expect({ created: [first.created, repeat.created], same: repeat.row.id === first.row.id }).toEqual({ created: [true, false], same: true });
  await expect(requestTopUp(db, { ...request, requestKey: 'another' })).rejects.toBeInstanceOf(WalletBalanceLimitError);
});
