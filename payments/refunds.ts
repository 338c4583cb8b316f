import { toDecimal } from '../domain/money';
import { CreditNoteRow, findCreditNote, findRefund, gatewayChargeIdOf, listStalePendingRefunds, RefundRow, settleRefund } from '../store/credit-notes';
import type { Database } from '../store/database';
import { GatewayUnavailableError, PaymentGateway } from './gateway';

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

/**
 * Sends again, each under its own key (so never twice), the refunds left pending before `before` by a gateway that
 * did not answer: what the janitor runs, since the refunds of payments, ingestion and repairs have no repeating
 * client. Returns each refund with the status it has now (still pending while the gateway stays unreachable).
 */
export async function resumeStalePendingRefunds(db: Database, gateway: PaymentGateway, before: Date, limit: number): Promise<Array<{ refund: RefundRow; status: RefundRow['status'] }>> {
  const resumed: Array<{ refund: RefundRow; status: RefundRow['status'] }> = [];
  for (const refund of await listStalePendingRefunds(db, before, limit)) {
    resumed.push({ refund, status: (await executeRefund(db, gateway, refund)).refund.status });
  }
  return resumed;
}
