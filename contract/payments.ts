/** Collection: charging an invoice, giving up on it, refunding a credit note. */

export interface ChargeInvoiceRequest {
  readonly invoiceId: string;
  /** 1 for the first try; dunning passes 2, 3, ... Each attempt is its own payment row and gateway key. */
  readonly attempt: number;
}

export interface ChargeInvoiceResult {
  readonly outcome: 'succeeded' | 'declined';
  readonly invoiceStatus: string;
  /** The decline code (insufficient_funds, expired_card, payment_method_missing...) or a note; null on success. */
  readonly detail: string | null;
  /** For a decline: whether a later attempt with the same payment method may succeed. */
  readonly retryable: boolean;
  /** The payment row that decided the outcome; null when nothing was charged (zero total). */
  readonly paymentId: string | null;
  /**
   * The attempt that decided the outcome. Usually the requested one; an earlier one when its lost response
   * turned out to have paid the invoice, so this attempt charged nothing.
   */
  readonly settledAttempt: number | null;
}

export interface MarkInvoiceUncollectibleRequest {
  readonly invoiceId: string;
  /** Why (e.g. "dunning exhausted after 4 attempts"): kept in the audit log and the customer-facing event. */
  readonly reason: string;
  /**
   * Leave it open when the customer's payment method is no longer the one its last attempt used (replaced while that
   * attempt was at the gateway, its wake-up still on the way): answered `newPaymentMethod`, nothing written.
   */
  readonly unlessNewPaymentMethod?: boolean;
}

export interface MarkInvoiceUncollectibleResult {
  /** The invoice's status afterwards: `uncollectible`, or `paid` when money arrived first. */
  readonly invoiceStatus: string;
  /** false when the invoice was not open (already marked, or paid meanwhile): nothing was written. */
  readonly changed: boolean;
  /** Left open for the payment method on file, which no attempt tried yet (`unlessNewPaymentMethod`). */
  readonly newPaymentMethod?: boolean;
}

export interface RefundCreditNoteRequest {
  readonly creditNoteId: string;
}

export interface RefundCreditNoteResult {
  readonly status: 'pending' | 'succeeded' | 'failed';
}

export interface RefundCreditTotalRequest {
  /** An invoice whose total is negative: money owed to the customer (store/credit-total-refunds.ts). */
  readonly invoiceId: string;
}

export interface RefundCreditTotalResult {
  /** `succeeded`: refunded; `failed`: the gateway refused, the amount became wallet credit; `not_refundable`: see detail. */
  readonly status: 'succeeded' | 'failed' | 'not_refundable';
  readonly detail: string | null;
}
