/**
 * The statements that finalize every invoice run as named prepared statements (store/prepared-statements.ts). What
 * that must not change: they commit or roll back with the caller's transaction, they return the whole invoice row,
 * and a migration that adds a column while processes run does not break them on connections that prepared them
 * earlier (a prepared `RETURNING *` would fail there with "cached plan must not change result type").
 */
import Decimal from 'decimal.js';
import type { DraftInvoiceLine } from '../../domain/invoice';
import { insertCustomerFixtures, insertPlanFixtures, insertSubscriptionFixtures } from '../../store/bulk-fixtures';
import { createDatabase, type Database } from '../../store/database';
import { finalizeInvoice, INVOICE_COLUMNS, insertDraftInvoice, InvoiceRow, issueFinalizedInvoice } from '../../store/invoices';
import { startSubscriptionPeriod } from '../../store/subscription-billing';
import { inTransaction } from '../../store/transactions';
import { createTestDatabaseWithUrl } from '../support/database';

let db: Database;
let url: string;
let subscription: { id: string; customer_id: string };

beforeAll(async () => {
  ({ db, url } = await createTestDatabaseWithUrl());
  const [plan] = await insertPlanFixtures(db, [{ code: 'prepared', version: 1, name: 'Prepared', currency: 'USD', billing_interval: 'P1M', flat_fee: '10.00' }]);
  const [customer] = await insertCustomerFixtures(db, [{ external_id: 'prepared-1', name: 'Prepared', currency: 'USD', payment_method: 'pm_sandbox_ok' }]);
  [subscription] = await insertSubscriptionFixtures(db, [
    { customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `subscription:${customer.id}`, start_at: new Date('2031-01-01T00:00:00Z') },
  ]);
});

afterAll(async () => {
  await db?.destroy();
});

const monthStart = (month: number): string => new Date(Date.UTC(2031, month, 1)).toISOString();

function feeLine(month: number): DraftInvoiceLine {
  return { kind: 'flat_fee', description: 'Prepared plan', metricCode: null, quantity: '1', amount: '10.00', periodStart: monthStart(month), periodEnd: monthStart(month + 1), breakdown: { model: 'flat' } };
}

/** The finalizing step as createPeriodInvoice runs it: draft, lines and total, the subscription's new period. */
async function finalizePeriod(on: Database, month: number, afterwards: () => Promise<void> = async () => {}): Promise<InvoiceRow> {
  return inTransaction(on, async (trx) => {
    const period = { start: monthStart(month), end: monthStart(month + 1) };
    const draft = await insertDraftInvoice(trx, { customerId: subscription.customer_id, subscriptionId: subscription.id, kind: 'period', currency: 'USD', periodStart: period.start, periodEnd: period.end });
    if (!draft) throw new Error(`month ${month} was invoiced already`);
    const finalized = await finalizeInvoice(trx, draft, [feeLine(month)]);
    await startSubscriptionPeriod(trx, subscription.id, period);
    await afterwards();
    return finalized;
  });
}

it('lists every column of invoices, so the prepared statements return the whole row', async () => {
  const columns = await db('information_schema.columns').where({ table_name: 'invoices', table_schema: 'public' }).pluck('column_name');
  expect([...INVOICE_COLUMNS].sort()).toEqual([...columns].sort());
});

it('commits and rolls back with the caller transaction', async () => {
  const before = await db('subscriptions').where({ id: subscription.id }).first('current_period_start');
  await expect(finalizePeriod(db, 0, async () => { throw new Error('crash before commit'); })).rejects.toThrow('crash before commit');
  expect(await db('invoices').where({ subscription_id: subscription.id }).count({ n: '*' })).toEqual([{ n: '0' }]);
  expect(await db('invoice_lines').count({ n: '*' })).toEqual([{ n: '0' }]);
  expect(await db('subscriptions').where({ id: subscription.id }).first('current_period_start')).toEqual(before);

  const finalized = await finalizePeriod(db, 0);
  expect(finalized).toMatchObject({ subscription_id: subscription.id, status: 'draft' });
  expect(new Decimal(finalized.total).equals('10.00')).toBe(true);
  expect(finalized.finalization_seq).not.toBeNull();
  expect((await issueFinalizedInvoice(db, finalized)).number).toMatch(/^INV-\d{6}$/);
  expect((await db('subscriptions').where({ id: subscription.id }).first('current_period_start')).current_period_start).toEqual(new Date(monthStart(0)));
});

it('keeps working on a connection that prepared them before a migration added a column to invoices', async () => {
  // One connection, so the second finalization runs on the very connection that prepared the statements.
  const single = createDatabase(url, 1);
  try {
    await finalizePeriod(single, 1);
    await db.raw('ALTER TABLE invoices ADD COLUMN added_by_a_later_migration text');
    try {
      const finalized = await finalizePeriod(single, 2);
      expect(finalized.period_start).toEqual(new Date(monthStart(2)));
      expect(finalized.finalization_seq).not.toBeNull();
    } finally {
      await db.raw('ALTER TABLE invoices DROP COLUMN added_by_a_later_migration');
    }
  } finally {
    await single.destroy();
  }
});
