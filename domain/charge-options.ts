/**
 * Per-charge options that act around a charge's price model (docs/pricing.md "Charge options"):
 * - `minAmount` / `maxAmount`: bounds on what the charge bills for the period, applied after its price model
 *   (and its included units); shown in the line's breakdown as `chargeBounds`.
 * - `firstTierFeeAtZeroUsage`: a graduated or volume charge bills its first tier's flat fee even when the
 *   period's billable quantity is 0 (by default zero usage bills nothing).
 * Pure; rating.ts applies them, fixed-point-rating.ts leaves any charge that uses them to the Decimal path.
 */
import { Dec, minorUnitExponent } from './money';
import { decimalText } from './price-calculators';
import { parseDecimal, type PriceModel } from './price-models';

export interface ChargeOptions {
  readonly price: PriceModel;
  readonly minAmount?: string;
  readonly maxAmount?: string;
  readonly firstTierFeeAtZeroUsage?: boolean;
}

/** `amount = min(max(ratedAmount, minAmount), maxAmount)`; `adjustment = amount − ratedAmount`. */
export interface ChargeBoundsDetail {
  readonly minAmount: string | null;
  readonly maxAmount: string | null;
  /** Exact amount of the price model, before the bounds. */
  readonly ratedAmount: string;
  /** What the bounds added (positive, the minimum) or took off (negative, the maximum); 0 when neither applied. */
  readonly adjustment: string;
}

/** Whether the charge uses any option here or a price feature the BigInt fast path does not implement. */
export function usesExtendedPricing(charge: ChargeOptions): boolean {
  if (charge.minAmount !== undefined || charge.maxAmount !== undefined || charge.firstTierFeeAtZeroUsage === true) return true;
  const price = charge.price;
  if (price.model === 'graduated' || price.model === 'volume') return price.tiers.some((tier) => tier.blockSize !== undefined);
  if (price.model === 'percentage') return price.freeEvents !== undefined || price.freeValue !== undefined;
  return false;
}

/** Why the options of a charge are unusable; empty when they are valid (currency digits: `chargeBoundsDigitErrors`). */
export function validateChargeOptions(charge: ChargeOptions): string[] {
  const errors: string[] = [];
  const model = charge.price?.model;
  for (const field of ['minAmount', 'maxAmount'] as const) {
    if (charge[field] === undefined) continue;
    const value = parseDecimal(charge[field]);
    if (value === undefined || value.lt(0)) errors.push(`${field} must be a non-negative decimal string`);
    if (model === 'flat') errors.push(`${field} does not apply to flat pricing (a flat fee is its own amount)`);
  }
  const minAmount = parseDecimal(charge.minAmount);
  const maxAmount = parseDecimal(charge.maxAmount);
  if (minAmount !== undefined && maxAmount !== undefined && minAmount.gt(maxAmount)) errors.push('minAmount must not be greater than maxAmount');
  if (charge.firstTierFeeAtZeroUsage !== undefined) {
    if (typeof charge.firstTierFeeAtZeroUsage !== 'boolean') errors.push('firstTierFeeAtZeroUsage must be true or false');
    // `false` is the default on any model; only asking for the fee needs tiers.
    else if (charge.firstTierFeeAtZeroUsage && model !== 'graduated' && model !== 'volume') errors.push(`firstTierFeeAtZeroUsage applies to graduated and volume pricing only, not ${String(model)}`);
  }
  return errors;
}

/** Bounds are money: more decimals than the currency has would be a typo, as for the plan's commitment. */
export function chargeBoundsDigitErrors(charge: ChargeOptions, currency: string): string[] {
  const exponent = minorUnitExponent(currency);
  return (['minAmount', 'maxAmount'] as const)
    .filter((field) => (parseDecimal(charge[field])?.decimalPlaces() ?? 0) > exponent)
    .map((field) => `${field} must have at most ${exponent} decimals in ${currency}`);
}

/** The charge's exact amount within its bounds, and the detail for the breakdown (undefined without bounds). */
export function applyChargeBounds(charge: ChargeOptions, ratedAmount: Dec): { amount: Dec; detail?: ChargeBoundsDetail } {
  if (charge.minAmount === undefined && charge.maxAmount === undefined) return { amount: ratedAmount };
  let amount = ratedAmount;
  if (charge.minAmount !== undefined) amount = Dec.max(amount, new Dec(charge.minAmount));
  if (charge.maxAmount !== undefined) amount = Dec.min(amount, new Dec(charge.maxAmount));
  return {
    amount,
    detail: {
      minAmount: charge.minAmount === undefined ? null : decimalText(new Dec(charge.minAmount)),
      maxAmount: charge.maxAmount === undefined ? null : decimalText(new Dec(charge.maxAmount)),
      ratedAmount: decimalText(ratedAmount),
      adjustment: decimalText(amount.minus(ratedAmount)),
    },
  };
}
