/**
 * The cash part of a re-rating's credit, refunded by credit notes against the paid invoices that billed the period.
 * The re-rated invoice comes first; when threshold invoices collected most of the period, its payment can hold less
 * than the credit (a price fix of 0.25 to 0.20 on 500 calls: 25.00 owed back, the period invoice paid 22.50 after a
 * 112.50 threshold invoice), and the rest is refunded from those invoices. Before, the note was refused
 * (refund_exceeds_paid) and the customer was never credited.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { formatMoney, type Dec } from '../domain/money';
import { refundShares, type RefundCapacity } from '../domain/rerating';
import { amountOwedAfterCreditNotes, CreditNoteRejectedError, enqueueCreditNoteIssued, insertCreditNote, insertCreditNoteLine, issueCreditNote, refundableBalance } from '../store/credit-notes';
import type { InvoiceRow } from '../store/invoices';
import { writeAudit } from '../store/outbox';
import { paidPartialInvoicesOfPeriod, type RerateRow } from '../store/rerates';
import type { Transaction } from '../store/transactions';

/** Issues the credit notes (each keyed by the re-rating on its invoice); returns the first one's id. */
export async function refundRerateCredit(trx: Transaction, rerate: RerateRow, invoice: InvoiceRow, refund: Dec): Promise<string> {
  const periodStart = new Date(rerate.proposal!.usagePeriod.start);
  const invoiceIds = [invoice.id, ...(await paidPartialInvoicesOfPeriod(trx, rerate.subscription_id, periodStart))];
  const capacities: RefundCapacity[] = [];
  for (const invoiceId of invoiceIds) capacities.push({ invoiceId, refundable: (await refundableBalance(trx, invoiceId)).remaining });
  // None can cover it together: the re-rated invoice's note is refused with the figures, as before.
  const shares = refundShares(refund, capacities) ?? [{ invoiceId: invoice.id, amount: refund }];
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
  return noteIds[0];
}

/**
 * The cash part of a re-rating's credit when the re-rated invoice is not paid yet (its first charge at the gateway,
 * or in dunning): one open credit note against it, as a note for reversed outcomes is (store/reversal-credit-notes.ts).
 * A charge made after it collects the total less the note and settles it; one already at the gateway for the whole
 * total refunds it from that payment (store/credit-notes.ts `refundCreditNotesOfPaidInvoice`). Before, the approved
 * re-rating failed (`invoice_not_paid`), nothing was credited, and dunning went on charging the uncorrected total.
 * Null when the invoice cannot take it: not open (uncollectible, void), or owing less than the credit.
 */
export async function creditUnpaidInvoice(trx: Transaction, rerate: RerateRow, invoice: InvoiceRow, credit: Dec): Promise<string | null> {
  if (invoice.status !== 'open' || (await amountOwedAfterCreditNotes(trx, invoice)).lessThan(credit)) return null;
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
