/**
 * A new grant first repays the overdraft drawn (docs/wallets.md). createGrant took the debt as the balance below zero;
 * but a grant the draw could not use (scoped to other metrics, not in effect yet) keeps the balance up while the
 * overdraft is drawn (balance = grants' remaining - debt, as applyWalletCredits reads it). With 100.00 scoped to
 * `images` and 30.00 of `tokens` usage drawn from the overdraft, the balance read 70.00, so a 20.00 grant repaid
 * nothing: it became 20.00 of spendable credit while 30.00 was still owed, and the overdraft room stayed used.
 */
import type { Database } from '../../store/database';
import { applyWalletCredits, createGrant, ensureWallet, findWallet } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

test('a grant repays the overdraft drawn beside a grant scoped to other metrics', async () => {
  const customer = await insertCustomer(db, { currency: 'USD' });
  const wallet = await ensureWallet(db, customer.id, 'USD');
  await db('wallets').where({ id: wallet.id }).update({ overdraft_limit: '50.00' });
  const jan = { from: new Date('2030-01-01T00:00:00Z'), to: new Date('2030-02-01T00:00:00Z') };
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'images-only', source: 'promotional', amount: '100.00', effectiveAt: jan.from, metricCodes: ['images'] });
  const drawn = await db.transaction((trx) =>
    applyWalletCredits(trx, { customerId: customer.id, currency: 'USD', drawKey: 'jan', charges: [{ metricCode: 'tokens', amount: '30.00' }], during: jan, description: 'January usage' }),
  );
  expect(drawn.map((credit) => [credit.source, credit.amount])).toEqual([['overdraft', '30']]);

  const { grant } = await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'goodwill', source: 'goodwill', amount: '20.00', effectiveAt: jan.from });
  const after = (await findWallet(db, customer.id, 'USD'))!;
  const repayment = await db('wallet_ledger').where({ wallet_id: wallet.id, kind: 'overdraft_repayment' }).first();
  expect({ remaining: Number(grant.remaining).toFixed(2), balance: Number(after.balance).toFixed(2), repayment: repayment?.description ?? null }).toEqual({
    remaining: '0.00', // all 20.00 went to the 30.00 owed
    balance: '90.00',
    repayment: 'repays 20 of overdraft',
  });

  // The overdraft room left is 40.00 (10.00 still owed): a 45.00 tokens charge draws 40.00 of it, no more.
  const feb = { from: new Date('2030-02-01T00:00:00Z'), to: new Date('2030-03-01T00:00:00Z') };
  const next = await db.transaction((trx) =>
    applyWalletCredits(trx, { customerId: customer.id, currency: 'USD', drawKey: 'feb', charges: [{ metricCode: 'tokens', amount: '45.00' }], during: feb, description: 'February usage' }),
  );
  expect(next.map((credit) => [credit.source, credit.amount])).toEqual([['overdraft', '40']]);
});
