import { GatewayUnavailableError, PaymentGateway } from '../payments/gateway';
import { executeRefund } from '../payments/refunds';
import type { RefundCreditTotalRequest, RefundCreditTotalResult } from '../contract/payments';
import type { RerateRefundsResult, RerateRequest } from '../contract/rerating';
import { rerateRefundOutcome } from '../domain/rerating';
import { findCreditNote, findRefund, findRefundOfCreditNote, RefundRow } from '../store/credit-notes';
import { findRerate, listRerateCreditNotes } from '../store/rerates';
import { refundCreditTotal } from '../store/credit-total-refunds';
import type { Database } from '../store/database';

// The refund itself is shared with POST /v1/invoices/:id/refunds, so it lives beside the gateway.
export { executeRefund };

/**
 * A note issued while its invoice was unpaid (activities/rerate-refund.ts `creditUnpaidInvoice`) has no refund of its
 * own: the charge took it off (the note is paid), or the payment will refund it (open until then; the payment writes
 * and sends that refund). Nothing to send here: failing would be retried forever and the re-rating never finish.
 */
async function settledWithoutRefund(db: Database, creditNoteId: string): Promise<{ status: RefundRow['status'] }> {
  const note = await findCreditNote(db, creditNoteId);
  if (!note) throw new Error(`credit note ${creditNoteId} has no refund`);
  return { status: note.status === 'paid' ? 'succeeded' : note.status === 'void' ? 'failed' : 'pending' };
}

export function createRefundActivities(db: Database, gateway: PaymentGateway) {
  return {
    /**
     * Refunds a credit note's pending refund through the gateway, under the refund's own idempotency key, so a
     * retry never refunds twice. Used when a re-rating's approved credit is carried out.
     */
    async refundCreditNote(request: { creditNoteId: string }): Promise<{ status: RefundRow['status'] }> {
      const refund = await findRefundOfCreditNote(db, request.creditNoteId);
      if (!refund) return settledWithoutRefund(db, request.creditNoteId);
      if (refund.status !== 'pending') return { status: refund.status };
      const settled = await executeRefund(db, gateway, refund);
      // Still pending means the gateway could not be reached: fail, so Temporal retries with backoff.
      if (settled.refund.status === 'pending') throw new GatewayUnavailableError(`refund ${refund.id} is still pending`);
      return { status: settled.refund.status };
    },

    /**
     * Sends every pending refund of a re-rating's credit notes (the re-rated invoice's, and the period's threshold
     * invoices' and adjustments' when it held less), each under its own key (`refund:<credit note id>`): a retry, or a
     * replayed workflow, finds the ones already answered settled and asks the gateway again only for the rest, under
     * the same key. Before, the workflow refunded its first note only and the others waited for the janitor. A note
     * taken off an unpaid invoice has no refund to send. Answers what became of each note.
     */
    async refundRerateCreditNotes(request: RerateRequest): Promise<RerateRefundsResult> {
      const rerate = await findRerate(db, request.rerateId);
      if (!rerate) return { refunds: [] };
      let unanswered: string | undefined;
      for (const note of await listRerateCreditNotes(db, rerate)) {
        if (note.refund_id && note.refund_status === 'pending') {
          const settled = (await executeRefund(db, gateway, (await findRefund(db, note.refund_id))!)).refund;
          if (settled.status === 'pending') unanswered ??= settled.id;
        }
      }
      // Still pending means the gateway could not be reached: fail once every other one was asked, so Temporal retries.
      if (unanswered) throw new GatewayUnavailableError(`refund ${unanswered} is still pending`);
      const notes = await listRerateCreditNotes(db, rerate);
      return {
        refunds: notes.map((note) => ({
          creditNoteId: note.credit_note_id,
          outcome: rerateRefundOutcome({ noteStatus: note.credit_note_status, refundStatus: note.refund_status, invoiceStatus: note.credited_invoice_status }),
        })),
      };
    },

    /**
     * Pays back an invoice whose total is negative: its refund is written, then sent under its own key (a retry never
     * refunds twice). Used by the subscription workflow when an invoice it issued credits more than it bills.
     */
    async refundCreditTotal(request: RefundCreditTotalRequest): Promise<RefundCreditTotalResult> {
      const written = await refundCreditTotal(db, request.invoiceId);
      if (written.notACreditTotal) {
        return { status: 'not_refundable', detail: written.notACreditTotal };
      }
      if (written.refunds.length === 0) {
        // Taken off an unpaid invoice in part, the rest with no paid invoice to refund it from: both said.
        const detail = [written.takenOff?.reason, written.unrefunded?.reason].filter((part) => part !== undefined).join('; ');
        return { status: 'not_refundable', detail: detail === '' ? null : detail };
      }
      // Each part is sent under its own key (a retry never refunds it twice), every one before this answers.
      const settled: RefundRow[] = [];
      for (const refund of written.refunds) settled.push(refund.status === 'pending' ? (await executeRefund(db, gateway, refund)).refund : refund);
      // Still pending means the gateway could not be reached: fail, so Temporal retries with backoff.
      const pending = settled.find((refund) => refund.status === 'pending');
      if (pending) throw new GatewayUnavailableError(`refund ${pending.id} is still pending`);
      // Refunded only in part: the rest stays owed (the invoice open, the janitor tries again).
      if (written.unrefunded) return { status: 'not_refundable', detail: `refunded in part; ${written.unrefunded.reason}` };
      const failed = settled.find((refund) => refund.status === 'failed');
      return failed ? { status: 'failed', detail: failed.failure_code } : { status: 'succeeded', detail: null };
    },
  };
}
