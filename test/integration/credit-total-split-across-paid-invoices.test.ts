/**
 * A credit total (a negative invoice: an immediate downgrade's proration, a cancel-now credit) larger than what any
 * single payment of the credited time still has to refund, while the time's paid invoices together cover it: the
 * period was paid by a period invoice and a threshold invoice. Before, nothing was refunded at all and the janitor
 * reported `unrefunded_credit` for ever. Real Postgres, the sandbox gateway, activities called directly.
 */
import Decimal from 'decimal.js';
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import { issueCreditNote, refundableBalance, type RefundRow } from '../../store/credit-notes';
import { listUnrefundedCreditTotals } from '../../store/credit-total-refunds';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

async function subscriptionWith(code: string) {
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: `${code}-${randomUUID().slice(0, 8)}`, name: code, billing_interval: 'P1M', flat_fee: '30.00' });
  const { row } = await insertSubscription(db, customer, plan, new Date('2034-04-01T00:00:00Z'));
  let finalized = Date.now() - 60_000;
  let thresholds = 0;
  const invoice = async (kind: string, total: string, start: string, end: string): Promise<InvoiceRow> =>
    (
      await db<InvoiceRow>('invoices')
        .insert({
          number: `SP-${randomUUID().slice(0, 8)}`,
          customer_id: customer.id,
          subscription_id: row.id,
          kind,
          status: 'open',
          currency: 'USD',
          period_start: new Date(start),
          period_end: new Date(end),
          total,
          finalized_at: new Date((finalized += 1000)),
          ...(kind === 'threshold' ? { threshold_index: (thresholds += 1), threshold_amount: total } : {}),
        })
        .returning('*')
    )[0];
  return { invoice };
}

const activities = () => createActivities({ db, gateway: new SandboxGateway(db) });
/** The credit's refunds in the order written (one transaction: the same created_at; the first has the shortest key). */
const refundsOf = async (credit: InvoiceRow) =>
  (await db<RefundRow>('refunds').where({ credit_note_id: credit.id })).sort((a, b) => a.created_at.getTime() - b.created_at.getTime() || a.idempotency_key.length - b.idempotency_key.length);
const money = (value: string) => new Decimal(value).toFixed(2);

test('a credit larger than any one payment of the credited time is refunded across its paid invoices, latest first', async () => {
  // April 2034: period invoice 30.00 paid; a threshold invoice 20.00 paid (usage billed early); Apr 16 a downgrade
  // credits 40.00 of April. Neither payment alone covers 40.00; together (50.00) they do.
  const { invoice } = await subscriptionWith('split-credit');
  const period = await invoice('period', '30.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  const threshold = await invoice('threshold', '20.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  for (const paid of [period, threshold]) expect(await activities().chargeInvoice({ invoiceId: paid.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  const credit = await invoice('proration', '-40.00', '2034-04-16T00:00:00Z', '2034-05-01T00:00:00Z');

  // Before: { status: 'not_refundable' }, no refund row, the credit open for ever.
  expect(await activities().refundCreditTotal({ invoiceId: credit.id })).toMatchObject({ status: 'succeeded' });
  const refunds = await refundsOf(credit);
  expect(refunds.map((refund) => [refund.invoice_id, money(refund.amount), refund.status])).toEqual([
    [threshold.id, '20.00', 'succeeded'],
    [period.id, '20.00', 'succeeded'],
  ]);
  const gateway = await db('sandbox_gateway_refunds').whereIn('idempotency_key', refunds.map((refund) => refund.idempotency_key)).sum('amount as total');
  expect(money(gateway[0].total)).toBe('40.00');
  expect((await db<InvoiceRow>('invoices').where({ id: credit.id }).first())!.status).toBe('paid');
  expect([(await refundableBalance(db, threshold.id)).remaining.toFixed(2), (await refundableBalance(db, period.id)).remaining.toFixed(2)]).toEqual(['0.00', '10.00']);

  // A retried activity (or a janitor rerun) refunds nothing more.
  expect(await activities().refundCreditTotal({ invoiceId: credit.id })).toMatchObject({ status: 'succeeded' });
  expect((await refundsOf(credit)).length).toBe(2);
});

test('a credit the credited time cannot cover in full is refunded as far as it goes, the rest left open, then completed once more is paid', async () => {
  // April 2034: period 30.00 paid, finance refunded 25.00 of it; a cancel-now credit of 12.00: only 5.00 refundable.
  const { invoice } = await subscriptionWith('split-short');
  const period = await invoice('period', '30.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  await issueCreditNote(db, { invoiceId: period.id, amount: new Decimal('25.00'), reason: 'goodwill', idempotencyKey: `gw-${randomUUID()}`, actor: 'test' });
  const credit = await invoice('closing', '-12.00', '2034-04-20T00:00:00Z', '2034-05-01T00:00:00Z');

  const first = await activities().refundCreditTotal({ invoiceId: credit.id });
  expect(first.status).toBe('not_refundable');
  expect((await refundsOf(credit)).map((refund) => money(refund.amount))).toEqual(['5.00']);
  // Still owed 7.00: open, so the janitor keeps reporting it (and retries it).
  expect((await db<InvoiceRow>('invoices').where({ id: credit.id }).first())!.status).toBe('open');
  expect((await listUnrefundedCreditTotals(db, new Date(Date.now() + 60_000), 1000)).map((row) => row.id)).toContain(credit.id);
  // Retried: nothing more is refunded from the used-up payment.
  await activities().refundCreditTotal({ invoiceId: credit.id });
  expect((await refundsOf(credit)).map((refund) => money(refund.amount))).toEqual(['5.00']);

  // A usage invoice of the same time is paid later: the rest is refunded from it, and the credit is settled.
  const usage = await invoice('threshold', '9.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  expect(await activities().chargeInvoice({ invoiceId: usage.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  expect(await activities().refundCreditTotal({ invoiceId: credit.id })).toMatchObject({ status: 'succeeded' });
  expect((await refundsOf(credit)).map((refund) => [refund.invoice_id, money(refund.amount)])).toEqual([
    [period.id, '5.00'],
    [usage.id, '7.00'],
  ]);
  expect((await db<InvoiceRow>('invoices').where({ id: credit.id }).first())!.status).toBe('paid');
  expect((await listUnrefundedCreditTotals(db, new Date(Date.now() + 60_000), 1000)).map((row) => row.id)).not.toContain(credit.id);
});
