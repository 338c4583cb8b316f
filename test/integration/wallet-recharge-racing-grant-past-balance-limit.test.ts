/**
 * An auto-recharge crossing observed while a grant is being written, on a wallet near the largest balance it holds
 * (MAX_WALLET_BALANCE): the recharge is bought only when its credit fits beside the balance and the purchases pending
 * (withoutRechargePastBalanceLimit), but that check read the balance without the wallet lock, so it did not wait for
 * the grant in flight. Each fitting alone, both went through: the recharge was invoiced and charged, then its grant
 * overflowed the balance at every settle (paid, never granted). The check now holds the wallet lock, as every
 * balance change does: it waits for the grant, sees it, and leaves the recharge armed.
 *
 * Timeline: grant 60.00 locks the wallet (room left: 100.00) -> recharge crossing (amount 50.00) observed -> the grant
 * commits -> the observation decides.
 */
import type { Database } from '../../store/database';
import { observeWalletBalance } from '../../store/wallet-topups';
import { createGrant, findWallet, MAX_WALLET_BALANCE } from '../../store/wallets';
import { toDecimal } from '../../domain/money';
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

test('a recharge crossing observed while a grant takes the last room is not bought past the balance limit', async () => {
  const customer = await insertCustomer(db, { currency: 'USD' });
  const start = MAX_WALLET_BALANCE.minus(100).toFixed(2);
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'start', source: 'promotional', amount: start, effectiveAt: new Date() });
  const wallet = (await findWallet(db, customer.id, 'USD'))!;
  // Below the threshold: the next observation is a recharge crossing.
  await db('wallets').where({ id: wallet.id }).update({ recharge_threshold: MAX_WALLET_BALANCE.toFixed(0), recharge_amount: '50.00' });
  // The wallet watched before (as any wallet with settings is): a first watch row's foreign key would wait on the lock.
  await db('wallet_balance_watch').insert({ wallet_id: wallet.id });

  let commitGrant!: () => void;
  const grantMayCommit = new Promise<void>((resolve) => (commitGrant = resolve));
  let grantWritten!: () => void;
  const grantInFlight = new Promise<void>((resolve) => (grantWritten = resolve));
  const granting = db.transaction(async (trx) => {
    await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'racing', source: 'goodwill', amount: '60.00', effectiveAt: new Date(), withinBalanceLimit: true }, trx);
    grantWritten();
    await grantMayCommit;
  });
  await grantInFlight;
  let observed = false;
  const observing = observeWalletBalance(db, wallet, new Date()).then((result) => ((observed = true), result));
  // Either the observation finishes without waiting for the grant, or it waits on the wallet lock.
  await eventually(async () => observed || (await waitingOnLocks()) >= 1, 'the observation done or waiting on the wallet lock', { timeoutMs: 15_000, intervalMs: 50 });
  commitGrant();
  await granting;
  const observation = await observing;

  const balance = toDecimal(String((await findWallet(db, customer.id, 'USD'))!.balance));
  const pending = (await db('wallet_top_ups').where({ wallet_id: wallet.id, status: 'pending' }).select('amount')).reduce((sum, row) => sum.plus(toDecimal(String(row.amount))), toDecimal('0'));
  expect({
    rechargeRequested: observation.rechargeTopUpId !== null,
    balance: balance.toFixed(2),
    pendingPurchases: pending.toFixed(2),
    purchasesStillGrantable: balance.plus(pending).lte(MAX_WALLET_BALANCE),
  }).toEqual({ rechargeRequested: false, balance: MAX_WALLET_BALANCE.minus(40).toFixed(2), pendingPurchases: '0.00', purchasesStillGrantable: true });
  // The recharge stays armed: an observation with room for it buys it.
  expect((await db('wallet_balance_watch').where({ wallet_id: wallet.id }).first()).recharge_armed).toBe(true);
});
