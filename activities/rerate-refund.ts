/**
 * The cash part of a re-rating's credit, refunded by credit notes against the paid invoices that billed the period.
 * The re-rated invoice comes first; when threshold invoices collected most of the period, its payment can hold less
 * than the credit (a price fix of 0.25 to 0.20 on 500 calls: 25.00 owed back, the period invoice paid 22.50 after a
 * 112.50 threshold invoice), and the rest is refunded from those invoices. Before, the note was refused
 * (refund_exceeds_paid) and the customer was never credited.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { Dec, formatMoney, sumMoney } from '../domain/money';
import { refundShares, refundSharesUpTo, type RefundCapacity } from '../domain/rerating';
import { amountOwedAfterCreditNotes, CreditNoteRejectedError, enqueueCreditNoteIssued, insertCreditNote, insertCreditNoteLine, issueCreditNote, refundableBalance } from '../store/credit-notes';
import { lockInvoice, type InvoiceRow } from '../store/invoices';
import { writeAudit } from '../store/outbox';
import { unpaidAdjustmentsOfPeriod, paidPartialInvoicesOfPeriod, type RerateRow } from '../store/rerates';
import type { Transaction } from '../store/transactions';

/** Issues the credit notes (each keyed by the re-rating on its invoice); returns the first one's id. */
export async function refundRerateCredit(trx: Transaction, rerate: RerateRow, invoice: InvoiceRow, refund: Dec): Promise<string> {
  const capacities = await refundCapacities(trx, [invoice.id, ...(await paidPartialInvoicesOfPeriod(trx, rerate.subscription_id, periodStartOf(rerate)))]);
  // None can cover it together: the re-rated invoice's note is refused with the figures, as before.
  const shares = refundShares(refund, capacities) ?? [{ invoiceId: invoice.id, amount: refund }];
  return (await issueRefundNotes(trx, rerate, shares))[0];
}

function periodStartOf(rerate: RerateRow): Date {
  return new Date(rerate.proposal!.usagePeriod.start);
}

async function refundCapacities(trx: Transaction, invoiceIds: readonly string[]): Promise<RefundCapacity[]> {
  const capacities: RefundCapacity[] = [];
  for (const invoiceId of invoiceIds) capacities.push({ invoiceId, refundable: (await refundableBalance(trx, invoiceId)).remaining });
  return capacities;
}

/** One credit note with its pending refund per share, keyed by the re-rating on its invoice; their ids in order. */
async function issueRefundNotes(trx: Transaction, rerate: RerateRow, shares: readonly { invoiceId: string; amount: Dec }[]): Promise<string[]> {
  const noteIds: string[] = [];
  for (const share of shares) {
    const issued = await issueCreditNote(trx, {
      invoiceId: share.invoiceId,
      amount: share.amount,
      reason: `re-rating ${rerate.id}: ${rerate.reason}`,
      idempotencyKey: `rerate:${rerate.id}`,
      actor: rerate.decided_by ?? 'finance',
    }).catch((error: unknown) => {
      // Refused by the refund rules (e.g. finance refunded the invoice since the proposal): refused again on
      // every retry, so a typed non-retryable failure rather than a workflow retrying forever.
      if (error instanceof CreditNoteRejectedError) throw ApplicationFailure.nonRetryable(error.detail, error.code);
      throw error;
    });
    noteIds.push(issued.creditNote.id);
  }
  return noteIds;
}

/**
 * The cash part of a re-rating's credit when the re-rated invoice is not paid yet (its first charge at the gateway,
 * or in dunning): an open credit note against it for what it still owes, as a note for reversed outcomes is
 * (store/reversal-credit-notes.ts). A charge made after it collects the total less the note and settles it; one
 * already at the gateway for the whole total refunds it from that payment (store/credit-notes.ts
 * `refundCreditNotesOfPaidInvoice`). When it owes less than the credit (threshold invoices collected most of the
 * period, or a credit total of its time took part of it), the rest was paid elsewhere and goes back from there:
 * refunded from the period's paid threshold invoices and adjustments, as for a paid invoice (refundRerateCredit), each
 * up to what it holds; what none holds stays on the invoice's note (reported as owed to the customer once the invoice
 * is settled). Before, the re-rating failed (`invoice_not_paid`) and dunning went on charging the uncorrected total.
 * Returns the first note's id (the one against the re-rated invoice when it has one); null when the invoice cannot
 * take a credit (not open: uncollectible, void).
 */
export async function creditUnpaidInvoice(trx: Transaction, rerate: RerateRow, invoice: InvoiceRow, credit: Dec): Promise<string | null> {
  if (invoice.status !== 'open') return null;
  const rest = credit.minus(Dec.min(credit, await amountOwedAfterCreditNotes(trx, invoice)));
  const { shares, unrefunded } = rest.gt(0)
    ? refundSharesUpTo(rest, await refundCapacities(trx, await paidPartialInvoicesOfPeriod(trx, rerate.subscription_id, periodStartOf(rerate))))
    : { shares: [], unrefunded: new Dec(0) };
  // What no payment can give back stays on the note, beyond what the invoice owes (a credit total of its time took
  // part of it: the customer is owed the difference): once the invoice is settled, the janitor reports it as owed to
  // the customer (`unrefunded_credit`). Refunded in cash, it would be more than was paid.
  const onInvoice = credit.minus(sumMoney(shares.map((share) => share.amount)));
  const noteIds = onInvoice.gt(0) ? [await creditOwedAmount(trx, rerate, invoice, onInvoice)] : [];
  noteIds.push(...(await issueRefundNotes(trx, rerate, shares)));
  if (unrefunded.gt(0)) await writeAudit(trx, { actor: 'workflow', action: 'rerate.credit_beyond_payments', subjectType: 'invoice', subjectId: invoice.id, reason: `re-rating ${rerate.id}: ${rerate.reason}`, details: { rerateId: rerate.id, unrefunded: formatMoney(unrefunded, invoice.currency), currency: invoice.currency } });
  return noteIds[0];
}

/**
 * The part of a re-rating's cash credit that the period's adjustments still unpaid take off what they owe (an open
 * note each, newest first): that money was never collected, so it is not refunded from elsewhere. Before, undoing a
 * +10.00 adjustment whose charge had not gone through refunded 10.00 from the paid period invoice while the
 * adjustment still owed 10.00: dunning charged it again, and once uncollectible the customer had 10.00 back never paid.
 * An uncollectible adjustment takes it too (before, the credit was refunded from the period invoice's payment).
 * Returns the notes' ids and what they took.
 */
export async function creditUnpaidAdjustments(trx: Transaction, rerate: RerateRow, credit: Dec): Promise<{ noteIds: string[]; credited: Dec }> {
  const noteIds: string[] = [];
  let credited = new Dec(0);
  for (const adjustmentId of await unpaidAdjustmentsOfPeriod(trx, rerate.subscription_id, periodStartOf(rerate))) {
    if (credited.gte(credit)) break;
    const adjustment = (await lockInvoice(trx, adjustmentId))!;
    // Uncollectible too: dunning gave up, so the credit's share was never collected (refunded from the period
    // invoice's payment, the customer got back money never paid); money arriving later collects that much less.
    if (adjustment.status !== 'open' && adjustment.status !== 'uncollectible') continue;
    const share = Dec.min(credit.minus(credited), await amountOwedAfterCreditNotes(trx, adjustment));
    if (share.lte(0)) continue;
    noteIds.push(await creditOwedAmount(trx, rerate, adjustment, share));
    credited = credited.plus(share);
  }
  return { noteIds, credited };
}

/** The open credit note taking `amount` off what the unpaid invoice owes, with its audit record and webhook. */
async function creditOwedAmount(trx: Transaction, rerate: RerateRow, invoice: InvoiceRow, credit: Dec): Promise<string> {
  const amount = formatMoney(credit, invoice.currency);
  const reason = `re-rating ${rerate.id}: ${rerate.reason}`;
  const note = await insertCreditNote(trx, invoice, { total: amount, idempotencyKey: `rerate:${rerate.id}`, reason });
  await insertCreditNoteLine(trx, note, invoice, {
    description: `Credit for invoice ${invoice.number ?? invoice.id}: ${rerate.reason}`,
    amount,
    breakdown: { unpaid: true },
  });
  await writeAudit(trx, {
    actor: rerate.decided_by ?? 'finance',
    action: 'invoice.credited_while_unpaid',
    subjectType: 'invoice',
    subjectId: invoice.id,
    reason,
    details: { creditNoteId: note.id, creditNoteNumber: note.number, amount, currency: invoice.currency, rerateId: rerate.id },
  });
  await enqueueCreditNoteIssued(trx, note, invoice, amount);
  return note.id;
}
