import { toDecimal } from '../domain/money';
import { GatewayUnavailableError, PaymentGateway } from '../payments/gateway';
import { CreditNoteRow, findCreditNote, findRefund, findRefundOfCreditNote, gatewayChargeIdOf, RefundRow, settleRefund } from '../store/credit-notes';
import type { Database } from '../store/database';

/**
 * Sends a pending refund to the gateway under its own key and records the answer. When the gateway cannot be
 * reached the refund stays pending; repeating the request with the same Idempotency-Key resumes it.
 */
export async function executeRefund(db: Database, gateway: PaymentGateway, refund: RefundRow): Promise<{ creditNote: CreditNoteRow; refund: RefundRow }> {
  const chargeId = await gatewayChargeIdOf(db, refund.payment_id);
  try {
    const result = chargeId
      ? await gateway.refund({
          idempotencyKey: refund.idempotency_key,
          chargeId,
          amount: toDecimal(refund.amount),
          currency: refund.currency,
          reason: refund.reason,
        })
      : ({ outcome: 'failed', refundId: null, failureCode: 'charge_not_found' } as const);
    return await settleRefund(
      db,
      refund.id,
      result.outcome === 'succeeded'
        ? { status: 'succeeded', gatewayRefundId: result.refundId }
        : { status: 'failed', gatewayRefundId: result.refundId, failureCode: result.failureCode },
    );
  } catch (error) {
    if (!(error instanceof GatewayUnavailableError)) throw error;
    const current = (await findRefund(db, refund.id))!;
    return { refund: current, creditNote: (await findCreditNote(db, current.credit_note_id))! };
  }
}

export function createRefundActivities(db: Database, gateway: PaymentGateway) {
  return {
    /**
     * Refunds a credit note's pending refund through the gateway, under the refund's own idempotency key, so a
     * retry never refunds twice. Used when a re-rating's approved credit is carried out.
     */
    async refundCreditNote(request: { creditNoteId: string }): Promise<{ status: RefundRow['status'] }> {
      const refund = await findRefundOfCreditNote(db, request.creditNoteId);
      if (!refund) throw new Error(`credit note ${request.creditNoteId} has no refund`);
      if (refund.status !== 'pending') return { status: refund.status };
      const settled = await executeRefund(db, gateway, refund);
      // Still pending means the gateway could not be reached: fail, so Temporal retries with backoff.
      if (settled.refund.status === 'pending') throw new GatewayUnavailableError(`refund ${refund.id} is still pending`);
      return { status: settled.refund.status };
    },
  };
}
