/**
 * A credit total paid back. An invoice whose total is negative (an immediate downgrade's proration, an immediate
 * cancellation's credit for unused time, when the credit is larger than what the invoice bills) is money owed to the
 * customer. Before, nothing paid it: the invoice stayed open, negative, for ever. It is now refunded to the payments
 * of the subscription's paid invoices for the credited time, latest first, split when one has too little left.
 *
 * The negative invoice is itself the credit document: its refund row names it where a refund names its credit note
 * (`refunds.credit_note_id`) and no credit note is issued, so the credit is counted once (margins, re-rating and the
 * customer's statements read the negative invoice; a credit note as well would take it off revenue twice). The
 * refund then settles as every refund does (payments/refunds.ts, `settleRefund`): refunded, the negative invoice is
 * paid (settled); refused by the gateway, its amount becomes wallet credit. The refunded invoice's refundable
 * balance counts it (store/credit-notes.ts `refundableBalance`), so finance cannot refund the same money again.
 */
import type { Knex } from 'knex';
import type Decimal from 'decimal.js';
import { Dec, formatMoney, sumMoney, toDecimal } from '../domain/money';
import {
  amountOwedAfterCreditNotes,
  CREDIT_NOTE_KIND,
  creditTotalsAppliedTo,
  creditTotalsTakenOff,
  creditTotalTakenOffOwnCharge,
  insertPendingRefund,
  partTakenOff,
  refundableBalance,
  refundIdempotencyKey,
  RefundRow,
} from './credit-notes';
import type { InvoiceRow } from './invoices';
import { writeAudit } from './outbox';
import { findSucceededPayment } from './payments';
import { TOP_UP_INVOICE_KIND } from './wallet-topups';

/**
 * The refunds of a credit total (one per paid invoice it was refunded from), and, when they do not cover all of it,
 * what is still owed and why.
 */
export interface CreditTotalRefund {
  readonly refunds: readonly RefundRow[];
  /** The first of them (the one under the credit's own key), or null: for callers that read one refund. */
  readonly refund: RefundRow | null;
  /** Set when the credited time's paid invoices had less left to refund than the credit: what is still owed. */
  readonly unrefunded?: { readonly amount: string; readonly reason: string };
  /** Set when the invoice is not an open credit total at all. */
  readonly notACreditTotal?: string;
  /**
   * Set when the credit is taken off what an unpaid invoice of its time still owes (applyToUnpaidInvoice): it is
   * not refunded while that invoice is unpaid; its charge asks for that much less.
   */
  readonly takenOff?: { readonly invoiceId: string; readonly reason: string };
}

/**
 * The refunds of a credit total, written pending in one transaction (the gateway hears of them after the commit).
 * Split across the credited time's paid invoices, latest first, each at most what it has left to refund: before, the
 * whole credit had to fit one payment, and a period paid by two invoices (period + threshold, or + proration) had
 * its credit refunded by none, reported for ever. Idempotent: what the credit's refunds already give back (pending,
 * refunded, or credited to the wallet on a refusal) is not written again; a later call only writes the rest, from
 * invoices paid since. The negative invoice's row lock serializes concurrent calls; each refunded invoice's row lock
 * serializes this with finance's refunds of it.
 */
export async function refundCreditTotal(db: Knex, invoiceId: string): Promise<CreditTotalRefund> {
  const written = await writeCreditTotalRefunds(db, invoiceId);
  return { ...written, refund: written.refunds[0] ?? null };
}

async function writeCreditTotalRefunds(db: Knex, invoiceId: string): Promise<Omit<CreditTotalRefund, 'refund'>> {
  return db.transaction(async (trx) => {
    const invoice = await trx<InvoiceRow>('invoices').where({ id: invoiceId }).forUpdate().first();
    if (!invoice) throw new Error(`no invoice ${invoiceId}`);
    const existing = await trx<RefundRow>('refunds').where({ credit_note_id: invoice.id }).orderBy([{ column: 'created_at' }, { column: 'id' }]);
    const credit = toDecimal(invoice.total).negated();
    if (invoice.kind === CREDIT_NOTE_KIND || !credit.isPositive() || credit.isZero()) {
      return { refunds: existing, notACreditTotal: `invoice ${invoice.number ?? invoice.id} is not a credit total (${invoice.kind}, ${invoice.status}, ${invoice.total})` };
    }
    let owed = credit.minus(sumMoney(existing.map((refund) => toDecimal(refund.amount))));
    if (invoice.status !== 'open' || !owed.isPositive() || owed.isZero()) return { refunds: existing };

    // Taken off the charge of an unpaid invoice of the credited time (before, dunning charged that invoice in full
    // and the credit was refunded only once it was paid; uncollectible, the customer was billed in full and owed the
    // credit). The two paths never both give the same part back: while that invoice is unpaid only what is not taken
    // off it is refunded here; once it is paid its settlement (settleCreditTotalsOfPaidInvoice, in the paying
    // transaction) tells what the charge took off, and only the rest is refunded, under the same keys. A credit
    // larger than what that invoice owes takes what it owes (`amount_taken_off`) and the rest is refunded here, in
    // the same transaction (before, none of it was taken off: the whole credit was refunded or reported owed while
    // dunning went on charging that invoice in full).
    const target = linkedInvoiceId(invoice) ?? (existing.length === 0 ? await applyToUnpaidInvoice(trx, invoice, credit) : null);
    let takenOff: CreditTotalRefund['takenOff'];
    if (target) {
      // Read without its row lock: the payment that marks it paid locks it, then this credit (lock order). Unpaid,
      // what the credit takes off it is its `amount_taken_off`; paid, its settlement committed with the payment, so
      // what the charge took off is final.
      const linked = (await trx<InvoiceRow>('invoices').where({ id: target }).first())!;
      const applied = (await trx<InvoiceRow>('invoices').where({ id: invoice.id }).first())!;
      owed = owed.minus(await creditTotalTakenOffOwnCharge(trx, applied));
      if (linked.status === 'open' || linked.status === 'uncollectible') {
        const part = formatMoney(partTakenOff(applied), invoice.currency);
        takenOff = { invoiceId: linked.id, reason: `${part} ${invoice.currency} taken off what invoice ${linked.number ?? linked.id} of the credited time still owes (unpaid)` };
      }
      if (!owed.isPositive() || owed.isZero()) return { refunds: existing, ...(takenOff ? { takenOff } : {}) };
    }

    const refunds = [...existing];
    const used = new Set(existing.map((refund) => refund.invoice_id)); // one refund per credit and refunded invoice
    for (const paid of await paidInvoicesOfCreditedTime(trx, invoice)) {
      if (used.has(paid.invoice.id)) continue;
      const amount = Dec.min(owed, paid.refundable);
      if (!amount.isPositive() || amount.isZero()) continue;
      const refund = await insertPendingRefund(trx, {
        creditNoteId: invoice.id,
        invoice: paid.invoice,
        paymentId: paid.paymentId,
        amount: formatMoney(amount, invoice.currency),
        reason: `credit of invoice ${invoice.number ?? invoice.id}`,
        // The first keeps the credit's own key (`refund:<credit id>`, as before the split); the others are keyed by
        // the invoice they are refunded from, so a retry finds each under the same key.
        ...(refunds.length === 0 ? {} : { idempotencyKey: `${refundIdempotencyKey(invoice.id)}:${paid.invoice.id}` }),
      });
      refunds.push(refund);
      owed = owed.minus(amount);
      await writeAudit(trx, {
        actor: 'billing',
        action: 'invoice.credit_total_refund_requested',
        subjectType: 'invoice',
        subjectId: invoice.id,
        reason: refund.reason,
        details: { refundId: refund.id, refundedInvoiceId: paid.invoice.id, refundedInvoiceNumber: paid.invoice.number, amount: refund.amount, currency: refund.currency },
      });
      if (owed.isZero()) break;
    }
    if (owed.isZero()) return { refunds, ...(takenOff ? { takenOff } : {}) };
    return {
      refunds,
      ...(takenOff ? { takenOff } : {}),
      unrefunded: {
        amount: formatMoney(owed, invoice.currency),
        reason:
          refunds.length === 0
            ? `no paid invoice of the subscription for the credited time has ${formatMoney(owed, invoice.currency)} ${invoice.currency} left to refund`
            : `the paid invoices of the subscription for the credited time have ${formatMoney(owed, invoice.currency)} ${invoice.currency} too little left to refund (of ${formatMoney(credit, invoice.currency)} ${invoice.currency})`,
      },
    };
  });
}

const linkedInvoiceId = (invoice: InvoiceRow): string | null => (invoice as InvoiceRow & { credited_invoice_id?: string | null }).credited_invoice_id ?? null;

/**
 * Applies an open credit total, none of it refunded yet, to the latest unpaid (open or uncollectible) invoice of the
 * credited time that still owes all of it, else to the one that owes the most (its `credited_invoice_id`, with an
 * audit record): that invoice's charges ask for that much less (amountOwedAfterCreditNotes). Owing less than the
 * credit, it takes what it owes (`amount_taken_off`) and the caller refunds the rest. Several credit totals may be
 * applied to one invoice, each taking what the others left. Both rows are locked (the credit's by the caller), as
 * markInvoicePaid locks the invoice: applied first, its payment sees the credit; paid first, the credit is refunded
 * from it.
 */
async function applyToUnpaidInvoice(trx: Knex.Transaction, credit: InvoiceRow, amount: Decimal): Promise<string | null> {
  const candidates = await trx<InvoiceRow>('invoices')
    .where({ subscription_id: credit.subscription_id, currency: credit.currency })
    .whereIn('status', ['open', 'uncollectible'])
    .whereNotIn('kind', [CREDIT_NOTE_KIND, TOP_UP_INVOICE_KIND])
    .whereNot({ id: credit.id })
    .where('total', '>', 0)
    .where(ofCreditedTime(trx, credit))
    .orderBy([{ column: 'finalized_at', order: 'desc' }, { column: 'id', order: 'desc' }])
    .select('id');
  let most: { unpaid: InvoiceRow; owes: Decimal } | null = null;
  for (const { id } of candidates) {
    const unpaid = (await trx<InvoiceRow>('invoices').where({ id }).forUpdate().first())!;
    if (unpaid.status !== 'open' && unpaid.status !== 'uncollectible') continue;
    // What the invoice still owes after its credit notes AND the credit totals already taken off it
    // (amountOwedAfterCreditNotes counts both, never below 0). Read under this invoice's row lock, so two credits
    // applied at once are serialized and together never take off more than it owes.
    const owes = await amountOwedAfterCreditNotes(trx, unpaid);
    if (!owes.lessThan(amount)) return takeOff(trx, credit, unpaid, amount, null);
    if (owes.isPositive() && !owes.isZero() && (!most || owes.greaterThan(most.owes))) most = { unpaid, owes };
  }
  // None owes all of it: the one that owes the most takes what it owes. Before, none took any of it: the whole
  // credit was refunded (or reported owed) while dunning went on charging that invoice in full and, uncollectible,
  // the customer stayed billed in full and was owed the credit.
  return most ? takeOff(trx, credit, most.unpaid, most.owes, amount) : null;
}

/** Links the credit total to the unpaid invoice, `part` of it (`amount_taken_off`, NULL when all of it), audited. */
async function takeOff(trx: Knex.Transaction, credit: InvoiceRow, unpaid: InvoiceRow, part: Decimal, whole: Decimal | null): Promise<string> {
  await trx('invoices')
    .where({ id: credit.id })
    .update({ credited_invoice_id: unpaid.id, amount_taken_off: whole ? formatMoney(part, credit.currency) : null });
  await writeAudit(trx, {
    actor: 'billing',
    action: 'invoice.credit_total_taken_off',
    subjectType: 'invoice',
    subjectId: credit.id,
    reason: `credit of invoice ${credit.number ?? credit.id} taken off unpaid invoice ${unpaid.number ?? unpaid.id} of the credited time${whole ? ` (${formatMoney(part, credit.currency)} of ${formatMoney(whole, credit.currency)} ${credit.currency}: what it owes; the rest is refunded)` : ''}`,
    details: { creditedInvoiceId: unpaid.id, creditedInvoiceNumber: unpaid.number, amount: formatMoney(part, credit.currency), currency: credit.currency },
  });
  return unpaid.id;
}

/**
 * In the transaction that marks `invoice` paid (its row lock held): the credit totals applied to it while it was
 * unpaid. Taken off its charge in full, each is settled (paid) without a refund; what the charge did not take off (it
 * was already at the gateway for more when the credit was applied) is refunded from its payment, under the credit's
 * own key, as far as the payment has left; any rest stays owed (the credit open, the janitor refunds or reports it).
 * Returns the pending refunds for the caller to send after the commit. Idempotent: a settled credit is left alone.
 */
export async function settleCreditTotalsOfPaidInvoice(trx: Knex.Transaction, invoice: InvoiceRow): Promise<RefundRow[]> {
  const credits = await creditTotalsTakenOff(trx, invoice.id);
  if (credits.length === 0) return []; // the usual case: one query
  const paid = (await trx<InvoiceRow>('invoices').where({ id: invoice.id }).first())!;
  const applied = await creditTotalsAppliedTo(trx, paid);
  const payment = await findSucceededPayment(trx, invoice.id);
  const refunds: RefundRow[] = [];
  for (const listed of credits) {
    const credit = (await trx<InvoiceRow>('invoices').where({ id: listed.id }).forUpdate().first())!;
    if (credit.status !== 'open') continue;
    const existing = await trx<RefundRow>('refunds').where({ credit_note_id: credit.id });
    const whole = toDecimal(credit.total).negated(); // the part taken off (applied) and the refunds add up to it
    const takenOff = applied.get(credit.id) ?? toDecimal('0');
    let owed = whole.minus(takenOff).minus(sumMoney(existing.map((refund) => toDecimal(refund.amount))));
    if (payment && owed.isPositive() && !owed.isZero() && !existing.some((refund) => refund.invoice_id === invoice.id)) {
      const amount = Dec.min(owed, (await refundableBalance(trx, invoice.id)).remaining);
      if (amount.isPositive() && !amount.isZero()) {
        const refund = await insertPendingRefund(trx, {
          creditNoteId: credit.id,
          invoice: paid,
          paymentId: payment.id,
          amount: formatMoney(amount, credit.currency),
          reason: `credit of invoice ${credit.number ?? credit.id}`,
          ...(existing.length === 0 ? {} : { idempotencyKey: `${refundIdempotencyKey(credit.id)}:${invoice.id}` }),
        });
        refunds.push(refund);
        owed = owed.minus(amount);
      }
    }
    // A refund of the rest still pending (the part not taken off, refunded when the credit was applied) settles it
    // when it settles (settleRefund), now that this invoice is paid.
    if (owed.isZero() && refunds.every((refund) => refund.credit_note_id !== credit.id) && !existing.some((refund) => refund.status === 'pending')) {
      await trx('invoices').where({ id: credit.id, status: 'open' }).update({ status: 'paid', paid_at: trx.fn.now() });
    }
    await writeAudit(trx, {
      actor: 'billing',
      action: 'invoice.credit_total_settled',
      subjectType: 'invoice',
      subjectId: credit.id,
      reason: `invoice ${paid.number ?? paid.id} it was applied to is paid`,
      details: { creditedInvoiceId: paid.id, takenOff: formatMoney(takenOff, credit.currency), refunded: refunds.filter((refund) => refund.credit_note_id === credit.id).map((refund) => refund.amount), stillOwed: formatMoney(owed, credit.currency) },
    });
  }
  return refunds;
}

/**
 * Which invoices (a query on `invoices`, unaliased) are of the time a credit total gives money back for: those whose
 * own period overlaps the credit's, and those that billed what its lines take back, dated earlier: the threshold
 * invoices its threshold_credit lines name, and the invoices with usage lines of the period of its reversal lines
 * (outcomes reversed after they were billed). Before, only the first: a credit made of reversed outcomes was neither
 * refunded from nor taken off the invoice that billed them (6.00 and 5.00 left owed, only the janitor reporting them).
 */
function ofCreditedTime(trx: Knex.Transaction, credit: InvoiceRow): (query: Knex.QueryBuilder) => void {
  return (time) => {
    time
      .where((own) => own.where('period_start', '<', credit.period_end).andWhere('period_end', '>', credit.period_start))
      .orWhereExists(
        trx('invoice_lines as l')
          .where('l.invoice_id', credit.id)
          .andWhere('l.kind', 'threshold_credit')
          .whereRaw("(l.breakdown ->> 'thresholdInvoiceId')::uuid = invoices.id")
          .select(trx.raw('1')),
      )
      .orWhereExists(
        trx('invoice_lines as l')
          .join('invoice_lines as u', (join) => join.on('u.period_start', 'l.period_start'))
          .where('l.invoice_id', credit.id)
          .whereRaw("(l.breakdown ->> 'reversal') = 'true'")
          .whereRaw("u.invoice_id = invoices.id AND u.kind = 'usage'")
          .select(trx.raw('1')),
      );
  };
}

/**
 * The subscription's paid invoices (no credit note, no top-up) of the credited time (ofCreditedTime), latest first,
 * row-locked, each with what it has left to refund. Only invoices of the credited time: the fee it credits was paid
 * there, and an older invoice's payment is another period's money (the period's own invoice refunded in full by
 * finance already, the credit would have been refunded a second time from last month's).
 */
async function paidInvoicesOfCreditedTime(trx: Knex.Transaction, credit: InvoiceRow): Promise<Array<{ invoice: InvoiceRow; paymentId: string; refundable: Decimal }>> {
  const candidates = await trx<InvoiceRow>('invoices')
    .where({ subscription_id: credit.subscription_id, currency: credit.currency, status: 'paid' })
    .whereNotIn('kind', [CREDIT_NOTE_KIND, TOP_UP_INVOICE_KIND])
    .where('total', '>', 0)
    .where(ofCreditedTime(trx, credit))
    .orderBy([{ column: 'finalized_at', order: 'desc' }, { column: 'id', order: 'desc' }])
    .select('id');
  const paid: Array<{ invoice: InvoiceRow; paymentId: string; refundable: Decimal }> = [];
  for (const { id } of candidates) {
    const invoice = (await trx<InvoiceRow>('invoices').where({ id }).forUpdate().first())!;
    const payment = await findSucceededPayment(trx, id);
    if (payment) paid.push({ invoice, paymentId: payment.id, refundable: (await refundableBalance(trx, id)).remaining });
  }
  return paid;
}

export interface UnrefundedCreditTotalRow {
  id: string;
  number: string | null;
  total: string;
  currency: string;
}

/**
 * Open credit totals finalized before `before` that their refunds do not pay back in full: issued before credit
 * totals were refunded, or refused then (in part or whole) for want of a paid invoice with enough left (one may be
 * paid since). What the janitor pays back or reports. One whose refunds cover it and are still pending is not listed:
 * the stale pending refunds are sent again on their own.
 */
export async function listUnrefundedCreditTotals(db: Knex, before: Date, limit: number): Promise<UnrefundedCreditTotalRow[]> {
  return db<InvoiceRow>('invoices as i')
    .where('i.status', 'open')
    .whereNot('i.kind', CREDIT_NOTE_KIND)
    .where('i.total', '<', 0)
    .where('i.finalized_at', '<', before)
    // What the charge of the invoice it was applied to left uncollected (total − payment) is shared among the credit
    // totals applied to it oldest first, as creditTotalsAppliedTo shares it: each counts only what the ones before it
    // left. Counting all of it for each (as when only one credit total could be applied) hid a second one that its
    // charge took nothing off and the payment could not refund in full: owed to the customer, never reported.
    .whereRaw(
      `coalesce((SELECT sum(r.amount) FROM refunds r WHERE r.credit_note_id = i.id), 0)
         + coalesce((SELECT greatest(0, least(coalesce(i.amount_taken_off, -i.total),
                              greatest(0, t.total - coalesce((SELECT p.amount FROM payments p WHERE p.invoice_id = t.id AND p.status = 'succeeded' LIMIT 1), 0))
                              - coalesce((SELECT sum(coalesce(e.amount_taken_off, -e.total)) FROM invoices e
                                           WHERE e.credited_invoice_id = t.id AND e.kind <> ? AND e.status <> 'void' AND e.total < 0
                                             AND (e.finalized_at, e.id) < (i.finalized_at, i.id)), 0)))
                       FROM invoices t WHERE t.id = i.credited_invoice_id AND t.status = 'paid'), 0)
         < -i.total`,
      [CREDIT_NOTE_KIND],
    )
    // Taken off an unpaid invoice of its time (applyToUnpaidInvoice): netted with what that invoice owes, not owed in
    // cash while it is unpaid (uncollectible included), as far as it is taken off: the rest (amount_taken_off less
    // than the credit) is owed unless refunded. Once that invoice is paid, what its charge took off counts as given
    // back: the credit total is settled then, or listed for what is left.
    .whereRaw(
      `NOT EXISTS (SELECT 1 FROM invoices t WHERE t.id = i.credited_invoice_id AND t.status IN ('open', 'uncollectible')
                     AND coalesce(i.amount_taken_off, -i.total) + coalesce((SELECT sum(r.amount) FROM refunds r WHERE r.credit_note_id = i.id), 0) >= -i.total)`,
    )
    .orderBy('i.finalized_at')
    .limit(limit)
    .select('i.id', 'i.number', 'i.total', 'i.currency');
}
