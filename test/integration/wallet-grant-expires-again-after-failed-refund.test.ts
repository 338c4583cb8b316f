/**
 * A purchased grant that expired, then got credit back from a refund the gateway refused, expires again. Its
 * expiry ledger entry was keyed `expire:<grant id>`, unique per wallet: the second expiry hit the key of the first,
 * the expiry transaction failed, and the wallet workflow's timer step failed on every retry (no more expiries,
 * notices or top-ups for the customer), with the restored credit spendable forever.
 *
 *   Jan 1   top-up of 50.00 paid: purchased grant, expires Mar 1
 *   Feb 1   refund of 20.00 requested: 30.00 left
 *   Mar 2   the 30.00 left expires
 *   Mar 3   the gateway refuses the refund: 20.00 restored to the grant, already past its expiry
 *   Mar 4   the 20.00 expires too
 */
import { randomUUID } from 'node:crypto';
import type { Database } from '../../store/database';
import { lockPurchasedCredit, prepareTopUpInvoice, requestTopUp, restoreRefundedCredit, runWalletTimers, settleTopUp, takeBackPurchasedCredit } from '../../store/wallet-topups';
import { findWallet } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

test('credit restored to an expired purchased grant expires again, and the expiry run does not fail', async () => {
  const customer = await insertCustomer(db, { external_id: 'reexpire' });
  const { row } = await requestTopUp(db, { customerId: customer.id, currency: 'USD', kind: 'top_up', requestKey: 'reexpire-1', amount: '50.00', expiresAt: new Date('2031-03-01T00:00:00Z'), requestedBy: 'test' });
  const invoice = await prepareTopUpInvoice(db, row.id);
  await db('invoices').where({ id: invoice.id }).update({ status: 'paid' });
  expect((await settleTopUp(db, row.id, new Date('2031-01-01T00:00:00Z'))).status).toBe('paid');

  const creditNoteId = randomUUID();
  await db.transaction(async (trx) => {
    const purchased = (await lockPurchasedCredit(trx, invoice.id))!;
    await takeBackPurchasedCredit(trx, purchased, '20.00', { id: creditNoteId, number: 'CN-REEXPIRE' });
  });
  expect(await runWalletTimers(db, customer.id, new Date('2031-03-02T00:00:00Z'))).toMatchObject({ expired: 1 });
  await db.transaction((trx) => restoreRefundedCredit(trx, invoice.id, creditNoteId));
  expect(Number((await findWallet(db, customer.id, 'USD'))!.balance).toFixed(2)).toBe('20.00');

  const again = await runWalletTimers(db, customer.id, new Date('2031-03-04T00:00:00Z')).catch((error: Error) => error.message);
  expect(again).toMatchObject({ expired: 1 });
  expect(Number((await findWallet(db, customer.id, 'USD'))!.balance).toFixed(2)).toBe('0.00');
});
