/**
 * The payment gateway port. A real provider (Stripe, Adyen) is one adapter implementing this interface.
 * Every charge carries an idempotency key derived from our payment row, so a retried call never charges twice.
 */
import type Decimal from 'decimal.js';

export interface ChargeRequest {
  /** `payment:<invoice id>:<attempt>`: stable across retries, crashes and continue-as-new. */
  readonly idempotencyKey: string;
  readonly paymentMethod: string;
  readonly amount: Decimal;
  readonly currency: string;
}

export type ChargeResult =
  | { readonly outcome: 'succeeded'; readonly chargeId: string }
  | {
      readonly outcome: 'declined';
      readonly chargeId: string;
      readonly declineCode: string;
      /** false when retrying the same payment method cannot help (expired card, stolen card). */
      readonly retryable: boolean;
    };

export interface PaymentGateway {
  charge(request: ChargeRequest): Promise<ChargeResult>;
  /** The charge made under this key, if any: how a caller resolves a lost response. */
  findCharge(idempotencyKey: string): Promise<ChargeResult | null>;
}

/** Thrown for failures that say nothing about the charge (timeout, connection reset): safe to retry. */
export class GatewayUnavailableError extends Error {
  override name = 'GatewayUnavailableError';
}
