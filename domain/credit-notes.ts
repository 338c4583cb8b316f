/**
 * The money rules of refunds. Pure: what is left to refund on an invoice, whether a refund amount is acceptable,
 * and the amount a credit note carries. The store reads and writes the rows; these decide the numbers.
 */
import type Decimal from 'decimal.js';
import { Dec, formatMoney, minorUnitExponent, toDecimal } from './money';

export interface RefundableBalance {
  /** What the customer paid for the invoice (0 when nothing succeeded). */
  readonly paid: Decimal;
  /** What non-void credit notes already gave back. */
  readonly credited: Decimal;
  /** paid − credited, never below zero: the most a new refund may be. */
  readonly remaining: Decimal;
}

/** The refundable balance from the stored sums (NUMERIC text; null when there is nothing to sum). */
export function refundableBalance(paid: string | null, credited: string | null): RefundableBalance {
  const paidAmount = toDecimal(paid ?? '0');
  const creditedAmount = toDecimal(credited ?? '0');
  // paid − credited is below zero once a credit note for reversed outcomes credited more than was left to refund
  // (refunded only in part): nothing is left then.
  return { paid: paidAmount, credited: creditedAmount, remaining: Dec.max(0, paidAmount.minus(creditedAmount)) };
}

/** A refund is a positive amount the currency can express (no more decimals than its minor unit). */
export function isValidRefundAmount(amount: Decimal, currency: string): boolean {
  return !(amount.decimalPlaces() > minorUnitExponent(currency) || !amount.isPositive() || amount.isZero());
}

/** Together with earlier credit notes, a refund never gives back more than was paid. */
export function exceedsRefundable(amount: Decimal, balance: RefundableBalance): boolean {
  return amount.greaterThan(balance.remaining);
}

/** Whether a replayed request (same idempotency key) asks for the same amount as the credit note it names. */
export function isSameRefundAmount(creditNoteTotal: string, amount: Decimal): boolean {
  return toDecimal(creditNoteTotal).equals(amount);
}

/** The amount a credit note and its single refund line carry: the request rounded to the currency. */
export function creditNoteAmount(amount: Decimal, currency: string): string {
  return formatMoney(amount, currency);
}
