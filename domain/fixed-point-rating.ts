/**
 * The rating engine's fast path: the same line math as price-calculators.ts, in BigInt fixed point, giving
 * exactly the lines the Decimal path gives (amount, quantity and every breakdown string), several times faster.
 * Internal to rating.ts; every exported signature of rating.ts, price-models.ts and price-calculators.ts stays
 * the Decimal one.
 *
 * Exactness: inputs are canonical decimal strings (at most 12 fraction digits), so each is an integer at scale
 * 10^12 and each product an integer at scale 10^24: BigInt computes them exactly. The Decimal path is exact too
 * (money.ts Exact); this path keeps every result within 40 significant digits, checks that bound at every step and
 * answers `undefined` (take the Decimal path) the moment it is exceeded, or for any input it does not recognise
 * (errors included), so the two paths can never disagree.
 * Money stays exact: no JS number ever holds an amount.
 */
import type { Charge, UsageBreakdown, UsageForCharge, UsageLine } from './rating';
import type { TierCharge } from './price-calculators';
import type { Tier } from './price-models';
import { usesExtendedPricing } from './charge-options';

/** Fraction digits of a parsed value: the most a canonical decimal string carries. */
const SCALE = 12;
const ONE = 10n ** 12n;
/** A result at scale 10^12 or 10^24 below this has at most 40 significant digits: the Decimal path was exact. */
const EXACT_LIMIT = 10n ** 40n;
const CANONICAL_NON_NEGATIVE = /^(\d{1,20})(?:\.(\d{1,12}))?$/;
const ZEROS = '000000000000';

/** A canonical non-negative decimal string as an integer at scale 10^12; undefined for anything else. */
function parse12(text: unknown): bigint | undefined {
  if (typeof text !== 'string') return undefined;
  const match = CANONICAL_NON_NEGATIVE.exec(text);
  if (match === null) return undefined;
  const fraction = match[2];
  return BigInt(fraction === undefined ? match[1] + ZEROS : match[1] + fraction + ZEROS.slice(fraction.length));
}

/** Decimal's `toFixed()` of a non-negative value at scale 10^`scale`: no exponent, no trailing fraction zeros. */
function text(value: bigint, scale: number): string {
  if (value === 0n) return '0';
  let digits = value.toString();
  if (digits.length <= scale) digits = '0'.repeat(scale - digits.length + 1) + digits;
  const point = digits.length - scale;
  let end = digits.length;
  while (end > point && digits.charCodeAt(end - 1) === 48) end -= 1;
  return end === point ? digits.slice(0, point) : `${digits.slice(0, point)}.${digits.slice(point, end)}`;
}

const text12 = (value: bigint): string => text(value, SCALE);
const text24 = (value: bigint): string => text(value, 2 * SCALE);

/** formatMoney of a non-negative amount at scale 10^24: half-up to `exponent` digits, exactly that many shown. */
function formatMinor24(amount: bigint, exponent: number): { minor: bigint; text: string } {
  const divisor = 10n ** BigInt(2 * SCALE - exponent);
  const minor = (amount + divisor / 2n) / divisor;
  return { minor, text: formatMinorUnits(minor, exponent) };
}

/** A non-negative count of minor units as the currency's money string ("12.50", "7", "1.250"). */
export function formatMinorUnits(minor: bigint, exponent: number): string {
  if (exponent === 0) return minor.toString();
  const digits = minor.toString().padStart(exponent + 1, '0');
  return `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
}

interface PreparedTier {
  readonly from: bigint;
  readonly to: bigint | null;
  readonly unitPrice: bigint;
  /** At scale 10^24, ready to add to a product. */
  readonly flatFee24: bigint;
  readonly fromText: string;
  readonly toText: string | null;
  readonly unitPriceText: string;
  readonly flatFeeText: string;
}

type PreparedPrice =
  | { readonly model: 'per_unit'; readonly unitPrice: bigint; readonly unitPriceText: string }
  | { readonly model: 'graduated' | 'volume'; readonly tiers: readonly PreparedTier[] }
  | { readonly model: 'package'; readonly size: bigint; readonly price: bigint; readonly sizeText: string; readonly priceText: string }
  | {
      readonly model: 'percentage';
      readonly rate: bigint;
      readonly minFee24: bigint | undefined;
      readonly maxFee24: bigint | undefined;
      readonly fixedFee: bigint;
      readonly rateText: string;
      readonly minFeeText: string | null;
      readonly maxFeeText: string | null;
      readonly fixedFeeText: string;
    };

interface PreparedCharge {
  readonly price: PreparedPrice;
  readonly included: bigint;
  readonly includedText: string;
}

/**
 * Parsed once per charge object (charges are immutable values: every field is readonly). Null: a charge this
 * path does not take (the Decimal path rates it, or reports what is wrong with it).
 */
const preparedCharges = new WeakMap<Charge, PreparedCharge | null>();

function prepared(charge: Charge): PreparedCharge | null {
  let entry = preparedCharges.get(charge);
  if (entry === undefined) {
    entry = prepare(charge);
    preparedCharges.set(charge, entry);
  }
  return entry;
}

function prepare(charge: Charge): PreparedCharge | null {
  // Charge bounds, first-tier fee at zero, block tiers and free allowances: the Decimal path only (kept simple).
  if (usesExtendedPricing(charge)) return null;
  const included = charge.includedUnits === undefined ? 0n : parse12(charge.includedUnits);
  const price = preparePrice(charge.price);
  if (included === undefined || price === null) return null;
  return { price, included, includedText: text12(included) };
}

function preparePrice(price: Charge['price']): PreparedPrice | null {
  switch (price.model) {
    case 'per_unit': {
      const unitPrice = parse12(price.unitPrice);
      return unitPrice === undefined ? null : { model: 'per_unit', unitPrice, unitPriceText: text12(unitPrice) };
    }
    case 'graduated':
    case 'volume': {
      const tiers = prepareTiers(price.tiers);
      return tiers === null ? null : { model: price.model, tiers };
    }
    case 'package': {
      const size = parse12(price.packageSize);
      const packagePrice = parse12(price.packagePrice);
      if (size === undefined || size === 0n || packagePrice === undefined) return null;
      return { model: 'package', size, price: packagePrice, sizeText: text12(size), priceText: text12(packagePrice) };
    }
    case 'percentage': {
      const rate = parse12(price.rate);
      const minFee = price.minFee === undefined ? undefined : parse12(price.minFee);
      const maxFee = price.maxFee === undefined ? undefined : parse12(price.maxFee);
      const fixedFee = parse12(price.fixedFeePerEvent ?? '0');
      if (rate === undefined || fixedFee === undefined) return null;
      if ((price.minFee !== undefined && minFee === undefined) || (price.maxFee !== undefined && maxFee === undefined)) return null;
      return {
        model: 'percentage',
        rate,
        minFee24: minFee === undefined ? undefined : minFee * ONE,
        maxFee24: maxFee === undefined ? undefined : maxFee * ONE,
        fixedFee,
        rateText: text12(rate),
        minFeeText: minFee === undefined ? null : text12(minFee),
        maxFeeText: maxFee === undefined ? null : text12(maxFee),
        fixedFeeText: text12(fixedFee),
      };
    }
    default:
      return null;
  }
}

/** Tier i covers (tiers[i-1].upTo, tiers[i].upTo], as price-calculators.ts bounds them. */
function prepareTiers(tiers: readonly Tier[]): PreparedTier[] | null {
  if (!Array.isArray(tiers) || tiers.length === 0) return null;
  const result: PreparedTier[] = [];
  let from = 0n;
  for (const tier of tiers) {
    const to = tier.upTo === null ? null : parse12(tier.upTo);
    const unitPrice = parse12(tier.unitPrice);
    const flatFee = parse12(tier.flatFee ?? '0');
    if (to === undefined || unitPrice === undefined || flatFee === undefined) return null;
    result.push({
      from,
      to,
      unitPrice,
      flatFee24: flatFee * ONE,
      fromText: text12(from),
      toText: to === null ? null : text12(to),
      unitPriceText: text12(unitPrice),
      flatFeeText: text12(flatFee),
    });
    from = to ?? from;
  }
  return result;
}

interface Rated {
  /** Exact, at scale 10^24. */
  readonly amount24: bigint;
  readonly breakdown: UsageBreakdown;
}

/**
 * The usage line of a valid usage charge (validated by the caller) and its amount in minor units, or undefined
 * when the Decimal path must rate it: an input this path does not recognise, or a result beyond the Decimal
 * path's exact range.
 */
export function rateChargeInFixedPoint(charge: Charge, usage: UsageForCharge | undefined, exponent: number): { line: UsageLine; minor: bigint } | undefined {
  const prepare = prepared(charge);
  if (prepare === null) return undefined;
  const quantity = usage === undefined ? 0n : parse12(usage.quantity);
  if (quantity === undefined) return undefined;
  const rated = prepare.price.model === 'percentage' ? ratePercentage(prepare.price, quantity, usage) : rateQuantity(prepare, quantity);
  if (rated === undefined) return undefined;
  const { minor, text: amount } = formatMinor24(rated.amount24, exponent);
  // The same keys in the same order as rating.ts's rateCharge, so stored breakdowns serialize alike.
  const line: UsageLine = {
    kind: 'usage',
    description: charge.displayName ?? charge.metricCode,
    metricCode: charge.metricCode,
    quantity: text12(quantity),
    amount,
    ...(charge.chargeId === undefined ? {} : { chargeId: charge.chargeId }),
    breakdown: rated.breakdown,
  };
  return { line, minor };
}

function rateQuantity(charge: PreparedCharge, quantity: bigint): Rated | undefined {
  const price = charge.price;
  const billable = quantity > charge.included ? quantity - charge.included : 0n;
  let amount24: bigint;
  let detail: Record<string, unknown>;
  switch (price.model) {
    case 'per_unit':
      amount24 = billable * price.unitPrice;
      detail = { model: 'per_unit', unitPrice: price.unitPriceText };
      break;
    case 'graduated': {
      const charges: TierCharge[] = [];
      amount24 = 0n;
      for (const tier of price.tiers) {
        if (billable <= tier.from) continue;
        const top = tier.to === null || billable < tier.to ? billable : tier.to;
        const charged = chargeTier(tier, top - tier.from);
        if (charged === undefined) return undefined;
        amount24 += charged.amount24;
        if (amount24 >= EXACT_LIMIT) return undefined;
        charges.push(charged.text);
      }
      detail = { model: 'graduated', tiers: charges };
      break;
    }
    case 'volume': {
      const tier = price.tiers.find((candidate) => candidate.to === null || billable <= candidate.to);
      if (tier === undefined || billable === 0n) {
        amount24 = 0n;
        detail = { model: 'volume', tier: null };
        break;
      }
      const charged = chargeTier(tier, billable);
      if (charged === undefined) return undefined;
      amount24 = charged.amount24;
      detail = { model: 'volume', tier: charged.text };
      break;
    }
    case 'package': {
      const whole = billable / price.size;
      const packages = whole * price.size === billable ? whole : whole + 1n;
      // Kept within 40 significant digits (the bound above): the quotient's integer digits and the divisor's digits
      // fit in them, so that a fraction can never round away to a whole number.
      if (whole.toString().length + price.size.toString().length > 38) return undefined;
      amount24 = packages * ONE * price.price;
      detail = { model: 'package', packageSize: price.sizeText, packagePrice: price.priceText, packages: text12(packages * ONE) };
      break;
    }
    default:
      return undefined;
  }
  if (amount24 >= EXACT_LIMIT) return undefined;
  return {
    amount24,
    breakdown: { ...detail, includedUnits: charge.includedText, billableQuantity: text12(billable), amount: text24(amount24) } as UsageBreakdown,
  };
}

function chargeTier(tier: PreparedTier, units: bigint): { amount24: bigint; text: TierCharge } | undefined {
  const product = units * tier.unitPrice;
  if (product >= EXACT_LIMIT) return undefined;
  const amount24 = product + tier.flatFee24;
  if (amount24 >= EXACT_LIMIT) return undefined;
  return {
    amount24,
    text: {
      from: tier.fromText,
      to: tier.toText,
      units: text12(units),
      unitPrice: tier.unitPriceText,
      flatFee: tier.flatFeeText,
      amount: text24(amount24),
    },
  };
}

function ratePercentage(price: Extract<PreparedPrice, { model: 'percentage' }>, quantity: bigint, usage: UsageForCharge | undefined): Rated | undefined {
  const values = usage?.eventValues;
  if (values === undefined) {
    if (quantity !== 0n) return undefined; // the Decimal path reports the missing values
  } else if (quantity !== BigInt(values.length) * ONE) {
    return undefined; // ... or the count mismatch
  }
  const events = values ?? [];
  let percentageFees = 0n;
  let valueAtRate = 0n;
  let valueTotal = 0n;
  let eventsAtMinimum = 0;
  let eventsAtMaximum = 0;
  const { rate, minFee24, maxFee24 } = price;
  for (const eventValue of events) {
    const value = parse12(eventValue);
    if (value === undefined) return undefined; // an invalid value: the Decimal path names it
    valueTotal += value;
    const fee = value * rate;
    if (fee >= EXACT_LIMIT) return undefined;
    if (minFee24 !== undefined && fee < minFee24) {
      percentageFees += minFee24;
      eventsAtMinimum += 1;
    } else if (maxFee24 !== undefined && fee > maxFee24) {
      percentageFees += maxFee24;
      eventsAtMaximum += 1;
    } else {
      percentageFees += fee;
      valueAtRate += value;
    }
    if (percentageFees >= EXACT_LIMIT || valueTotal >= EXACT_LIMIT) return undefined;
  }
  const fixedFees = price.fixedFee * BigInt(events.length);
  const amount24 = percentageFees + fixedFees * ONE;
  if (fixedFees >= EXACT_LIMIT || amount24 >= EXACT_LIMIT) return undefined;
  return {
    amount24,
    breakdown: {
      model: 'percentage',
      rate: price.rateText,
      minFee: price.minFeeText,
      maxFee: price.maxFeeText,
      fixedFeePerEvent: price.fixedFeeText,
      eventCount: events.length,
      valueTotal: text12(valueTotal),
      valueAtRate: text12(valueAtRate),
      eventsAtMinimum,
      eventsAtMaximum,
      percentageFees: text24(percentageFees),
      fixedFees: text12(fixedFees),
      amount: text24(amount24),
    },
  };
}
