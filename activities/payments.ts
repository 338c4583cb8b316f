import { ApplicationFailure } from '@temporalio/activity';
import { toDecimal } from '../domain/money';
import type { PaymentGateway } from '../payments/gateway';
import type { Database } from '../store/database';
import { findInvoice } from '../store/invoices';
import { enqueueOutboxEvent } from '../store/outbox';

export interface ChargeInvoiceRequest {
  readonly invoiceId: string;
  /** 1 for the first try; dunning passes 2, 3, ... Each attempt is its own payment row and gateway key. */
  readonly attempt: number;
}

export interface ChargeInvoiceResult {
  readonly outcome: 'succeeded' | 'declined';
  readonly invoiceStatus: string;
  readonly detail: string | null;
  readonly retryable: boolean;
}

interface PaymentRow {
  id: string;
  status: 'pending' | 'succeeded' | 'failed';
  idempotency_key: string;
  failure_code: string | null;
}

export function paymentIdempotencyKey(invoiceId: string, attempt: number): string {
  return `payment:${invoiceId}:${attempt}`;
}

export function createPaymentActivities(db: Database, gateway: PaymentGateway) {
  return {
    /**
     * Collects an open invoice, at most once. The pending payment row is written before the gateway call and
     * the gateway key comes from it, so a retry after a crash or timeout reuses the same key.
     */
    async chargeInvoice(request: ChargeInvoiceRequest): Promise<ChargeInvoiceResult> {
      const invoice = await findInvoice(db, request.invoiceId);
      if (!invoice) throw ApplicationFailure.nonRetryable(`invoice ${request.invoiceId} not found`, 'invoice_not_found');
      if (invoice.status === 'paid') return { outcome: 'succeeded', invoiceStatus: 'paid', detail: null, retryable: false };
      if (invoice.status !== 'open') {
        throw ApplicationFailure.nonRetryable(`invoice ${invoice.id} is ${invoice.status}`, 'invoice_not_open');
      }

      const amount = toDecimal(invoice.total);
      if (amount.isZero()) {
        // Nothing to collect: a zero invoice is settled without a gateway call.
        await db.transaction(async (trx) => markInvoicePaid(trx, invoice.id, null));
        return { outcome: 'succeeded', invoiceStatus: 'paid', detail: 'nothing to collect', retryable: false };
      }

      const customer = await db('customers').where({ id: invoice.customer_id }).first('payment_method');
      const paymentMethod: string = customer?.payment_method ?? '';
      const idempotencyKey = paymentIdempotencyKey(invoice.id, request.attempt);
      await db('payments')
        .insert({
          invoice_id: invoice.id,
          attempt: request.attempt,
          status: 'pending',
          amount: invoice.total,
          currency: invoice.currency,
          payment_method: paymentMethod,
          idempotency_key: idempotencyKey,
        })
        .onConflict(['invoice_id', 'attempt'])
        .ignore();
      const payment: PaymentRow = await db('payments').where({ idempotency_key: idempotencyKey }).first();
      if (payment.status !== 'pending') return resultOf(payment, invoice.status);

      const charge = await gateway.charge({ idempotencyKey, paymentMethod, amount, currency: invoice.currency });

      return db.transaction(async (trx) => {
        if (charge.outcome === 'succeeded') {
          await trx('payments')
            .where({ id: payment.id })
            .update({ status: 'succeeded', gateway_charge_id: charge.chargeId, updated_at: trx.fn.now() });
          await markInvoicePaid(trx, invoice.id, payment.id);
          return { outcome: 'succeeded', invoiceStatus: 'paid', detail: null, retryable: false } as const;
        }
        await trx('payments').where({ id: payment.id }).update({
          status: 'failed',
          gateway_charge_id: charge.chargeId,
          failure_code: charge.declineCode,
          failure_message: `declined: ${charge.declineCode}`,
          updated_at: trx.fn.now(),
        });
        await enqueueOutboxEvent(trx, {
          eventType: 'payment.failed',
          aggregateType: 'invoice',
          aggregateId: invoice.id,
          dedupeKey: `payment.failed:${payment.id}`,
          payload: { invoiceId: invoice.id, attempt: request.attempt, declineCode: charge.declineCode },
        });
        return { outcome: 'declined', invoiceStatus: 'open', detail: charge.declineCode, retryable: charge.retryable } as const;
      });
    },
  };
}

function resultOf(payment: PaymentRow, invoiceStatus: string): ChargeInvoiceResult {
  return payment.status === 'succeeded'
    ? { outcome: 'succeeded', invoiceStatus: 'paid', detail: null, retryable: false }
    : { outcome: 'declined', invoiceStatus, detail: payment.failure_code, retryable: payment.failure_code !== 'expired_card' };
}

async function markInvoicePaid(trx: Database, invoiceId: string, paymentId: string | null): Promise<void> {
  await trx('invoices').where({ id: invoiceId }).update({ status: 'paid', paid_at: trx.fn.now() });
  await enqueueOutboxEvent(trx as never, {
    eventType: 'payment.succeeded',
    aggregateType: 'invoice',
    aggregateId: invoiceId,
    dedupeKey: `payment.succeeded:${invoiceId}`,
    payload: { invoiceId, paymentId },
  });
}
