/**
 * Price models: the shapes a plan author writes, and the rules that make a shape a valid price.
 *
 * Prices are decimal strings, exactly as they arrive in JSON and leave Postgres; price-calculators.ts parses
 * them into Decimals only after `validatePriceModel` has accepted them.
 *
 * A fixed fee per outcome (e.g. 0.99 per resolved ticket) has no model of its own: it is `per_unit` over a
 * metric that counts the outcome events. A second name would price identically through a second code path.
 */
import { Dec, isDecimalString } from './money';

export interface Tier {
  /** Inclusive upper bound in units; the tier covers (previous upTo, upTo]. null only on the last tier. */
  readonly upTo: string | null;
  readonly unitPrice: string;
  /** Charged once if the tier holds any units; a tier the quantity never reaches costs nothing. */
  readonly flatFee?: string;
  /**
   * Bill this tier in blocks of `blockSize` units: its units are rounded up to whole blocks (per tier) and
   * `unitPrice` is the price of one block. Absent: unit by unit, as before.
   */
  readonly blockSize?: string;
}

/** A recurring fee per period, billed in advance; not part of usage rating (see `flatFeeLine`). */
export interface FlatPrice {
  readonly model: 'flat';
  readonly amount: string;
}

export interface PerUnitPrice {
  readonly model: 'per_unit';
  readonly unitPrice: string;
}

/** Each tier prices only the units that fall inside it. */
export interface GraduatedPrice {
  readonly model: 'graduated';
  readonly tiers: readonly Tier[];
}

/** The tier the whole quantity falls in prices every unit. */
export interface VolumePrice {
  readonly model: 'volume';
  readonly tiers: readonly Tier[];
}

/** `packagePrice` per started block of `packageSize` units. */
export interface PackagePrice {
  readonly model: 'package';
  readonly packageSize: string;
  readonly packagePrice: string;
}

/**
 * Outcome pricing: per event, `rate` (a fraction: "0.025" is 2.5 %) of the event's reported value, bounded by
 * `minFee`/`maxFee`, then `fixedFeePerEvent` on top. The bounds apply to the percentage part only, so a plan
 * reads the way it is sold: "2.5 % (min 0.50, max 10.00) + 0.30 per event".
 */
export interface PercentagePrice {
  readonly model: 'percentage';
  readonly rate: string;
  readonly minFee?: string;
  readonly maxFee?: string;
  readonly fixedFeePerEvent?: string;
  /**
   * Free allowance (docs/pricing.md "Free units on percentage charges"): the first `freeEvents` events, and/or
   * the first `freeValue` of value, in the order the events were recorded (not their timestamps), bear no fee at all (no rate, no minimum,
   * no fixed fee). With both, the allowance ends at whichever runs out first. `freeEvents` is a whole number.
   */
  readonly freeEvents?: string;
  readonly freeValue?: string;
}

/**
 * Cost-plus (docs/pricing.md): per unit, what the unit cost us (the metric's cost table in effect at each event's
 * time, for the event's combination) × (1 + markup). `markup` is a non-negative fraction: "0.25" bills cost + 25 %.
 */
export interface CostPlusPrice {
  readonly model: 'cost_plus';
  readonly markup: string;
}

export type PriceModel = FlatPrice | PerUnitPrice | GraduatedPrice | VolumePrice | PackagePrice | PercentagePrice | CostPlusPrice;

/** Models that price a single quantity (as opposed to a list of event values). */
export type QuantityPriceModel = PerUnitPrice | GraduatedPrice | VolumePrice | PackagePrice;

export type UsagePriceModel = QuantityPriceModel | PercentagePrice | CostPlusPrice;

/**
 * Why a price is unusable, one message per problem; empty when it is valid. Written for the API to reject bad
 * plans, so it checks the runtime shape too (JSON may carry numbers or nulls where strings belong).
 */
export function validatePriceModel(price: PriceModel): string[] {
  if (price === null || typeof price !== 'object') return ['price must be an object'];
  switch (price.model) {
    case 'flat':
      return nonNegative('amount', price.amount);
    case 'per_unit':
      return nonNegative('unitPrice', price.unitPrice);
    case 'graduated':
    case 'volume':
      return validateTiers(price.tiers);
    case 'package':
      return [...positive('packageSize', price.packageSize), ...nonNegative('packagePrice', price.packagePrice)];
    case 'percentage':
      return validatePercentage(price);
    case 'cost_plus':
      return nonNegative('markup', price.markup);
    default:
      return [`unknown price model: ${JSON.stringify((price as { model?: unknown }).model)}`];
  }
}

function validateTiers(tiers: readonly Tier[]): string[] {
  if (!Array.isArray(tiers) || tiers.length === 0) return ['tiers must be a non-empty list'];
  const errors: string[] = [];
  let previousUpTo: Dec | undefined;
  tiers.forEach((tier, index) => {
    const field = `tiers[${index}]`;
    if (tier === null || typeof tier !== 'object') {
      errors.push(`${field} must be an object`);
      return;
    }
    errors.push(...nonNegative(`${field}.unitPrice`, tier.unitPrice));
    if (tier.flatFee !== undefined) errors.push(...nonNegative(`${field}.flatFee`, tier.flatFee));
    if (tier.blockSize !== undefined) errors.push(...positive(`${field}.blockSize`, tier.blockSize));

    const isLast = index === tiers.length - 1;
    if (tier.upTo === null) {
      if (!isLast) errors.push(`${field}.upTo may be null only on the last tier`);
      return;
    }
    if (isLast) errors.push(`${field}.upTo must be null: the last tier is open-ended`);
    const upTo = parseDecimal(tier.upTo);
    if (upTo === undefined) {
      errors.push(`${field}.upTo must be a decimal string or null`);
    } else if (upTo.lte(0)) {
      errors.push(`${field}.upTo must be greater than 0`);
    } else if (previousUpTo !== undefined && upTo.lte(previousUpTo)) {
      errors.push(`${field}.upTo must be greater than tiers[${index - 1}].upTo (tiers ascend)`);
    }
    previousUpTo = upTo ?? previousUpTo;
  });
  return errors;
}

function validatePercentage(price: PercentagePrice): string[] {
  const errors: string[] = [];
  const rate = parseDecimal(price.rate);
  if (rate === undefined) errors.push('rate must be a decimal string');
  else if (rate.lt(0) || rate.gt(1)) errors.push('rate must be between 0 and 1 (a fraction: "0.025" is 2.5 %)');

  for (const field of ['minFee', 'maxFee', 'fixedFeePerEvent'] as const) {
    if (price[field] !== undefined) errors.push(...nonNegative(field, price[field]));
  }
  const minFee = parseDecimal(price.minFee);
  const maxFee = parseDecimal(price.maxFee);
  if (minFee !== undefined && maxFee !== undefined && minFee.gt(maxFee)) {
    errors.push('minFee must not be greater than maxFee');
  }
  if (price.freeEvents !== undefined) {
    const freeEvents = parseDecimal(price.freeEvents);
    if (freeEvents === undefined || freeEvents.lt(0) || !freeEvents.isInteger()) errors.push('freeEvents must be a whole number as a string, e.g. "3"');
  }
  if (price.freeValue !== undefined) errors.push(...nonNegative('freeValue', price.freeValue));
  return errors;
}

function nonNegative(field: string, value: unknown): string[] {
  const parsed = parseDecimal(value);
  if (parsed === undefined) return [`${field} must be a decimal string`];
  return parsed.lt(0) ? [`${field} must not be negative`] : [];
}

function positive(field: string, value: unknown): string[] {
  const parsed = parseDecimal(value);
  if (parsed === undefined) return [`${field} must be a decimal string`];
  return parsed.lte(0) ? [`${field} must be greater than 0`] : [];
}

/** The Decimal for a canonical decimal string, or undefined for anything else (numbers included). */
export function parseDecimal(value: unknown): Dec | undefined {
  return typeof value === 'string' && isDecimalString(value) ? new Dec(value) : undefined;
}
