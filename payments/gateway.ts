/**
 * The payment gateway port. A real provider (Stripe, Adyen) is one adapter implementing this interface
 * (see docs/payments.md, "Adding a real gateway"). Every charge and refund carries an idempotency key derived
 * from our own row, so a retried call never moves money twice.
 */
import type Decimal from 'decimal.js';

export interface ChargeRequest {
  /** `payment:<invoice id>:<attempt>`: stable across retries, crashes and continue-as-new. */
  readonly idempotencyKey: string;
  readonly paymentMethod: string;
  readonly amount: Decimal;
  readonly currency: string;
  /** Our invoice id, sent as the provider's merchant reference / metadata (shows in their dashboard). */
  readonly reference: string;
}

export type ChargeResult =
  | {
      readonly outcome: 'succeeded';
      readonly chargeId: string;
      readonly amount: Decimal;
      readonly currency: string;
    }
  | {
      readonly outcome: 'declined';
      readonly chargeId: string;
      readonly amount: Decimal;
      readonly currency: string;
      readonly declineCode: string;
      /** false when retrying the same payment method cannot help (expired card, stolen card). */
      readonly retryable: boolean;
    };

export interface RefundRequest {
  /** `refund:<credit note id>`: a retried refund request never refunds twice. */
  readonly idempotencyKey: string;
  /** The provider's id of the charge being refunded (`payments.gateway_charge_id`). */
  readonly chargeId: string;
  readonly amount: Decimal;
  readonly currency: string;
  readonly reason: string;
}

export type RefundResult =
  | { readonly outcome: 'succeeded'; readonly refundId: string }
  | { readonly outcome: 'failed'; readonly refundId: string | null; readonly failureCode: string };

export interface PaymentGateway {
  /**
   * Charges once per idempotency key: a repeated request with the same key returns the first result and moves
   * no money. Throws GatewayUnavailableError when the outcome is unknown (timeout, connection reset).
   */
  charge(request: ChargeRequest): Promise<ChargeResult>;
  /** The charge made under this key, if any: how a caller resolves a lost response. */
  findCharge(idempotencyKey: string): Promise<ChargeResult | null>;
  /** Refunds (part of) a succeeded charge, once per idempotency key. Throws GatewayUnavailableError like charge. */
  refund(request: RefundRequest): Promise<RefundResult>;
}

/**
 * Thrown for failures that say nothing about the outcome (timeout, connection reset, 5xx): the charge may or may
 * not exist. Callers look it up by idempotency key (findCharge) before trying again, or retry with the same key.
 */
export class GatewayUnavailableError extends Error {
  override name = 'GatewayUnavailableError';
}
