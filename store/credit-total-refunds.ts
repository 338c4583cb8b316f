/**
 * A credit total paid back. An invoice whose total is negative (an immediate downgrade's proration, an immediate
 * cancellation's credit for unused time, when the credit is larger than what the invoice bills) is money owed to the
 * customer. Before, nothing paid it: the invoice stayed open, negative, for ever. It is now refunded to the payment
 * of the subscription's latest paid invoice for the credited time that still has that much left to refund.
 *
 * The negative invoice is itself the credit document: its refund row names it where a refund names its credit note
 * (`refunds.credit_note_id`) and no credit note is issued, so the credit is counted once (margins, re-rating and the
 * customer's statements read the negative invoice; a credit note as well would take it off revenue twice). The
 * refund then settles as every refund does (payments/refunds.ts, `settleRefund`): refunded, the negative invoice is
 * paid (settled); refused by the gateway, its amount becomes wallet credit. The refunded invoice's refundable
 * balance counts it (store/credit-notes.ts `refundableBalance`), so finance cannot refund the same money again.
 */
import type { Knex } from 'knex';
import { formatMoney, toDecimal } from '../domain/money';
import { CREDIT_NOTE_KIND, insertPendingRefund, refundableBalance, RefundRow } from './credit-notes';
import type { InvoiceRow } from './invoices';
import { writeAudit } from './outbox';
import { findSucceededPayment } from './payments';
import { TOP_UP_INVOICE_KIND } from './wallet-topups';

export type CreditTotalRefund = { readonly refund: RefundRow } | { readonly refund: null; readonly reason: string };

/**
 * The refund of a credit total, written pending in one transaction (the gateway hears of it after the commit), or
 * why there is none. Idempotent: a credit total already refunded returns its refund. The negative invoice's row lock
 * serializes concurrent calls; the refunded invoice's row lock serializes this with finance's refunds of it.
 */
export async function refundCreditTotal(db: Knex, invoiceId: string): Promise<CreditTotalRefund> {
  return db.transaction(async (trx) => {
    const invoice = await trx<InvoiceRow>('invoices').where({ id: invoiceId }).forUpdate().first();
    if (!invoice) throw new Error(`no invoice ${invoiceId}`);
    const existing = await trx<RefundRow>('refunds').where({ credit_note_id: invoice.id }).first();
    if (existing) return { refund: existing };
    const amount = toDecimal(invoice.total).negated();
    if (invoice.kind === CREDIT_NOTE_KIND || invoice.status !== 'open' || !amount.isPositive() || amount.isZero()) {
      return { refund: null, reason: `invoice ${invoice.number ?? invoice.id} is not an open credit total (${invoice.kind}, ${invoice.status}, ${invoice.total})` };
    }
    const paid = await latestInvoiceRefundableFor(trx, invoice, amount.toFixed());
    if (!paid) {
      return { refund: null, reason: `no paid invoice of the subscription for the credited time has ${formatMoney(amount, invoice.currency)} ${invoice.currency} left to refund` };
    }
    const refund = await insertPendingRefund(trx, {
      creditNoteId: invoice.id,
      invoice: paid.invoice,
      paymentId: paid.paymentId,
      amount: formatMoney(amount, invoice.currency),
      reason: `credit of invoice ${invoice.number ?? invoice.id}`,
    });
    await writeAudit(trx, {
      actor: 'billing',
      action: 'invoice.credit_total_refund_requested',
      subjectType: 'invoice',
      subjectId: invoice.id,
      reason: refund.reason,
      details: { refundId: refund.id, refundedInvoiceId: paid.invoice.id, refundedInvoiceNumber: paid.invoice.number, amount: refund.amount, currency: refund.currency },
    });
    return { refund };
  });
}

/**
 * The subscription's latest paid invoice (no credit note, no top-up) whose period overlaps the credit's, with
 * `amount` or more left to refund, row-locked. Only an invoice of the credited time: the fee it credits was paid
 * there, and an older invoice's payment is another period's money (the period's own invoice refunded in full by
 * finance already, the credit would have been refunded a second time from last month's).
 */
async function latestInvoiceRefundableFor(
  trx: Knex.Transaction,
  credit: InvoiceRow,
  amount: string,
): Promise<{ invoice: InvoiceRow; paymentId: string } | undefined> {
  const candidates = await trx<InvoiceRow>('invoices')
    .where({ subscription_id: credit.subscription_id, currency: credit.currency, status: 'paid' })
    .whereNotIn('kind', [CREDIT_NOTE_KIND, TOP_UP_INVOICE_KIND])
    .where('total', '>', 0)
    .where('period_start', '<', credit.period_end)
    .andWhere('period_end', '>', credit.period_start)
    .orderBy([{ column: 'finalized_at', order: 'desc' }, { column: 'id', order: 'desc' }])
    .select('id');
  for (const { id } of candidates) {
    const invoice = (await trx<InvoiceRow>('invoices').where({ id }).forUpdate().first())!;
    const payment = await findSucceededPayment(trx, id);
    if (payment && (await refundableBalance(trx, id)).remaining.gte(amount)) return { invoice, paymentId: payment.id };
  }
  return undefined;
}

export interface UnrefundedCreditTotalRow {
  id: string;
  number: string | null;
  total: string;
  currency: string;
}

/**
 * Open credit totals finalized before `before` that no refund pays back: issued before credit totals were refunded,
 * or refused then for want of a paid invoice (one may be paid since). What the janitor pays back or reports.
 */
export async function listUnrefundedCreditTotals(db: Knex, before: Date, limit: number): Promise<UnrefundedCreditTotalRow[]> {
  return db<InvoiceRow>('invoices as i')
    .where('i.status', 'open')
    .whereNot('i.kind', CREDIT_NOTE_KIND)
    .where('i.total', '<', 0)
    .where('i.finalized_at', '<', before)
    .whereNotExists(db('refunds').whereRaw('refunds.credit_note_id = i.id').select(db.raw('1')))
    .orderBy('i.finalized_at')
    .limit(limit)
    .select('i.id', 'i.number', 'i.total', 'i.currency');
}
