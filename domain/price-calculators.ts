/**
 * The arithmetic of each price model. Inputs are already validated and parsed; outputs are exact (unrounded)
 * amounts plus a breakdown a customer can redo by hand. Rounding happens once per invoice line, in rating.ts.
 */
import { Dec, Exact, toDecimal } from './money';
import type {
  GraduatedPrice,
  PackagePrice,
  PercentagePrice,
  PerUnitPrice,
  QuantityPriceModel,
  Tier,
  VolumePrice,
} from './price-models';

/** One tier's share of a quantity: `units × unitPrice + flatFee = amount`. */
export interface TierCharge {
  /** Exclusive lower bound of the tier (the previous tier's upTo, or 0). */
  readonly from: string;
  /** Inclusive upper bound of the tier; null for the open-ended last tier. */
  readonly to: string | null;
  readonly units: string;
  readonly unitPrice: string;
  readonly flatFee: string;
  readonly amount: string;
  /** Only on a tier billed in blocks: the block size and the started blocks, ceil(units / blockSize). */
  readonly blockSize?: string;
  readonly blocks?: string;
}

export interface PerUnitDetail {
  readonly model: 'per_unit';
  readonly unitPrice: string;
}

export interface GraduatedDetail {
  readonly model: 'graduated';
  /** Only the tiers that hold units, lowest first. */
  readonly tiers: readonly TierCharge[];
}

export interface VolumeDetail {
  readonly model: 'volume';
  /** The tier the whole quantity falls in; null when there is nothing to bill. */
  readonly tier: TierCharge | null;
}

export interface PackageDetail {
  readonly model: 'package';
  readonly packageSize: string;
  readonly packagePrice: string;
  /** Started packages: ceil(quantity / packageSize). */
  readonly packages: string;
}

/**
 * `percentageFees = valueAtRate × rate + eventsAtMinimum × minFee + eventsAtMaximum × maxFee`, and
 * `amount = percentageFees + fixedFees`.
 */
export interface PercentageDetail {
  readonly model: 'percentage';
  readonly rate: string;
  readonly minFee: string | null;
  readonly maxFee: string | null;
  readonly fixedFeePerEvent: string;
  readonly eventCount: number;
  readonly valueTotal: string;
  /** Total value of the events whose fee was neither raised to minFee nor capped at maxFee. */
  readonly valueAtRate: string;
  readonly eventsAtMinimum: number;
  readonly eventsAtMaximum: number;
  readonly percentageFees: string;
  readonly fixedFees: string;
}

/**
 * Added to a percentage breakdown only when the price has a free allowance. `eventsFree` events bore no fee at
 * all; `valueFree` is the value the allowance covered (the event that crossed `freeValue` counts as paid, for
 * the part of its value above the allowance). Fixed fees are `fixedFeePerEvent × (eventCount − eventsFree)`.
 */
export interface PercentageFreeDetail {
  readonly freeEvents: string | null;
  readonly freeValue: string | null;
  readonly eventsFree: number;
  readonly valueFree: string;
}

export type QuantityDetail = PerUnitDetail | GraduatedDetail | VolumeDetail | PackageDetail;

export interface Priced<Detail> {
  /** Exact, unrounded. */
  readonly amount: Dec;
  readonly detail: Detail;
}

/*
 * The arithmetic below is exact (money.ts Exact); rating.ts rounds each line once. At 40 digits a product just below a
 * half cent billed a cent too much: 12345678.901234567891 × 1336672288.177322074789 = 16502126866015697.284999...9
 * billed ...697.29, not ...697.28. A quotient (package, block) keeps its fraction, so ceil never sees a rounded-up whole.
 */
const ZERO: Dec = new Exact(0);
/** A price field or a quantity as a Decimal whose arithmetic is exact. */
const exact = (value: string | Dec): Dec => new Exact(typeof value === 'string' ? toDecimal(value) : value);

/** Full-precision decimal text, never exponent notation. */
export const decimalText = (value: Dec): string => value.toFixed();

export function priceQuantity(price: QuantityPriceModel, rawQuantity: Dec): Priced<QuantityDetail> {
  const quantity = exact(rawQuantity);
  switch (price.model) {
    case 'per_unit':
      return pricePerUnit(price, quantity);
    case 'graduated':
      return priceGraduated(price, quantity);
    case 'volume':
      return priceVolume(price, quantity);
    case 'package':
      return pricePackage(price, quantity);
  }
}

function pricePerUnit(price: PerUnitPrice, quantity: Dec): Priced<PerUnitDetail> {
  const unitPrice = exact(price.unitPrice);
  return { amount: quantity.times(unitPrice), detail: { model: 'per_unit', unitPrice: decimalText(unitPrice) } };
}

function priceGraduated(price: GraduatedPrice, quantity: Dec): Priced<GraduatedDetail> {
  const charges = boundedTiers(price.tiers)
    .filter((tier) => quantity.gt(tier.from))
    .map((tier) => chargeTier(tier, unitsInTier(tier, quantity)));
  return { amount: sumOf(charges), detail: { model: 'graduated', tiers: charges.map((charge) => charge.text) } };
}

function priceVolume(price: VolumePrice, quantity: Dec): Priced<VolumeDetail> {
  // A quantity exactly on a tier's upTo belongs to that tier: the bounds are (from, to].
  const tier = boundedTiers(price.tiers).find((candidate) => candidate.to === null || quantity.lte(candidate.to));
  if (tier === undefined || quantity.isZero()) return { amount: ZERO, detail: { model: 'volume', tier: null } };
  const charge = chargeTier(tier, quantity);
  return { amount: charge.amount, detail: { model: 'volume', tier: charge.text } };
}

function pricePackage(price: PackagePrice, quantity: Dec): Priced<PackageDetail> {
  const packageSize = exact(price.packageSize);
  const packagePrice = exact(price.packagePrice);
  const packages = quantity.div(packageSize).ceil();
  return {
    amount: packages.times(packagePrice),
    detail: {
      model: 'package',
      packageSize: decimalText(packageSize),
      packagePrice: decimalText(packagePrice),
      packages: decimalText(packages),
    },
  };
}

export function pricePercentage(price: PercentagePrice, rawEventValues: readonly Dec[]): Priced<PercentageDetail> {
  const eventValues = rawEventValues.map((value) => exact(value));
  const rate = exact(price.rate);
  const minFee = price.minFee === undefined ? undefined : exact(price.minFee);
  const maxFee = price.maxFee === undefined ? undefined : exact(price.maxFee);
  const fixedFeePerEvent = exact(price.fixedFeePerEvent ?? '0');
  const allowance = freeAllowance(price, eventValues);

  let percentageFees = ZERO;
  let valueAtRate = ZERO;
  let eventsAtMinimum = 0;
  let eventsAtMaximum = 0;
  for (const value of allowance.paidValues) {
    const fee = value.times(rate);
    if (minFee !== undefined && fee.lt(minFee)) {
      percentageFees = percentageFees.plus(minFee);
      eventsAtMinimum += 1;
    } else if (maxFee !== undefined && fee.gt(maxFee)) {
      percentageFees = percentageFees.plus(maxFee);
      eventsAtMaximum += 1;
    } else {
      percentageFees = percentageFees.plus(fee);
      valueAtRate = valueAtRate.plus(value);
    }
  }
  const fixedFees = fixedFeePerEvent.times(allowance.paidValues.length);
  return {
    amount: percentageFees.plus(fixedFees),
    detail: {
      model: 'percentage',
      rate: decimalText(rate),
      minFee: minFee === undefined ? null : decimalText(minFee),
      maxFee: maxFee === undefined ? null : decimalText(maxFee),
      fixedFeePerEvent: decimalText(fixedFeePerEvent),
      eventCount: eventValues.length,
      valueTotal: decimalText(eventValues.reduce<Dec>((total, value) => total.plus(value), ZERO)),
      valueAtRate: decimalText(valueAtRate),
      eventsAtMinimum,
      eventsAtMaximum,
      percentageFees: decimalText(percentageFees),
      fixedFees: decimalText(fixedFees),
      ...allowance.detail,
    },
  };
}

interface FreeAllowance {
  /** The value each paid event pays the rate on (the crossing event: only its part above the free value). */
  readonly paidValues: readonly Dec[];
  readonly detail: PercentageFreeDetail | Record<string, never>;
}

/**
 * Splits the events, in the order they happened, into the free ones and the paid ones. An event is free while
 * fewer than `freeEvents` events were free and the running value stays within `freeValue`; the first event
 * that takes the running value past `freeValue` is paid on its excess; every later event is paid in full.
 */
function freeAllowance(price: PercentagePrice, eventValues: readonly Dec[]): FreeAllowance {
  if (price.freeEvents === undefined && price.freeValue === undefined) return { paidValues: eventValues, detail: {} };
  const freeEvents = price.freeEvents === undefined ? undefined : exact(price.freeEvents);
  const freeValue = price.freeValue === undefined ? undefined : exact(price.freeValue);
  const paidValues: Dec[] = [];
  let eventsFree = 0;
  let valueFree = ZERO;
  let open = true;
  for (const value of eventValues) {
    if (open && freeEvents !== undefined && freeEvents.lte(eventsFree)) open = false;
    if (!open) {
      paidValues.push(value);
      continue;
    }
    const runningValue = valueFree.plus(value);
    if (freeValue === undefined || runningValue.lte(freeValue)) {
      eventsFree += 1;
      valueFree = runningValue;
      continue;
    }
    // This event exhausts the free value: the allowance covers part of it, and it pays on the rest.
    paidValues.push(runningValue.minus(freeValue));
    valueFree = freeValue;
    open = false;
  }
  return {
    paidValues,
    detail: {
      freeEvents: freeEvents === undefined ? null : decimalText(freeEvents),
      freeValue: freeValue === undefined ? null : decimalText(freeValue),
      eventsFree,
      valueFree: decimalText(valueFree),
    },
  };
}

/**
 * Whether a percentage price charges every event `rate × value` (+ the fixed fee): no per-event minFee/maxFee clamp
 * and no free allowance (which follows the events' order). Then the event count and the values' sum are enough.
 */
export function percentageRatesFromTotal(price: Pick<PercentagePrice, 'minFee' | 'maxFee' | 'freeEvents' | 'freeValue'>): boolean {
  return price.minFee === undefined && price.maxFee === undefined && price.freeEvents === undefined && price.freeValue === undefined;
}

/** pricePercentage for a price percentageRatesFromTotal accepts, from the event count and the values' sum: the same amount and detail. */
export function pricePercentageOfTotal(price: PercentagePrice, eventCount: number, rawValueTotal: Dec): Priced<PercentageDetail> {
  if (!percentageRatesFromTotal(price)) throw new Error('a percentage price with a minFee, maxFee or free allowance needs every event value');
  const valueTotal = exact(rawValueTotal);
  const rate = exact(price.rate);
  const fixedFeePerEvent = exact(price.fixedFeePerEvent ?? '0');
  const percentageFees = valueTotal.times(rate);
  const fixedFees = fixedFeePerEvent.times(eventCount);
  return {
    amount: percentageFees.plus(fixedFees),
    detail: {
      model: 'percentage',
      rate: decimalText(rate),
      minFee: null,
      maxFee: null,
      fixedFeePerEvent: decimalText(fixedFeePerEvent),
      eventCount,
      valueTotal: decimalText(valueTotal),
      valueAtRate: decimalText(valueTotal),
      eventsAtMinimum: 0,
      eventsAtMaximum: 0,
      percentageFees: decimalText(percentageFees),
      fixedFees: decimalText(fixedFees),
    },
  };
}

interface BoundedTier {
  readonly from: Dec;
  readonly to: Dec | null;
  readonly unitPrice: Dec;
  readonly flatFee: Dec;
  /** Set on a tier billed in blocks: `unitPrice` is then the price of one block. */
  readonly blockSize?: Dec;
}

/** Tiers with their lower bounds made explicit: tier i covers (tiers[i-1].upTo, tiers[i].upTo]. */
function boundedTiers(tiers: readonly Tier[]): BoundedTier[] {
  return tiers.map((tier, index) => ({
    from: index === 0 ? ZERO : exact(tiers[index - 1].upTo as string),
    to: tier.upTo === null ? null : exact(tier.upTo),
    unitPrice: exact(tier.unitPrice),
    flatFee: exact(tier.flatFee ?? '0'),
    ...(tier.blockSize === undefined ? {} : { blockSize: exact(tier.blockSize) }),
  }));
}

function unitsInTier(tier: BoundedTier, quantity: Dec): Dec {
  const top = tier.to === null ? quantity : Exact.min(quantity, tier.to);
  return top.minus(tier.from);
}

interface TierChargeWithAmount {
  readonly amount: Dec;
  readonly text: TierCharge;
}

function chargeTier(tier: BoundedTier, units: Dec): TierChargeWithAmount {
  if (tier.blockSize !== undefined) return chargeTierInBlocks(tier, tier.blockSize, units);
  const amount = units.times(tier.unitPrice).plus(tier.flatFee);
  return { amount, text: tierChargeText(tier, units, amount) };
}

function tierChargeText(tier: BoundedTier, units: Dec, amount: Dec): TierCharge {
  return {
    from: decimalText(tier.from),
    to: tier.to === null ? null : decimalText(tier.to),
    units: decimalText(units),
    unitPrice: decimalText(tier.unitPrice),
    flatFee: decimalText(tier.flatFee),
    amount: decimalText(amount),
  };
}

function sumOf(charges: readonly TierChargeWithAmount[]): Dec {
  return charges.reduce<Dec>((total, charge) => total.plus(charge.amount), ZERO);
}

/** A tier billed in blocks: each started block of `blockSize` units costs `unitPrice` (rounded up per tier). */
function chargeTierInBlocks(tier: BoundedTier, blockSize: Dec, units: Dec): TierChargeWithAmount {
  const blocks = units.div(blockSize).ceil();
  const amount = blocks.times(tier.unitPrice).plus(tier.flatFee);
  return { amount, text: { ...tierChargeText(tier, units, amount), blockSize: decimalText(blockSize), blocks: decimalText(blocks) } };
}

/**
 * The first tier's flat fee alone, for a charge that bills it even at zero usage (`firstTierFeeAtZeroUsage`):
 * the breakdown shows the first tier holding 0 units, so the customer sees what the amount is.
 */
export function priceFirstTierAtZeroUsage(price: GraduatedPrice | VolumePrice): Priced<GraduatedDetail | VolumeDetail> {
  const [first] = boundedTiers(price.tiers);
  const charge = chargeTier({ ...first, blockSize: undefined }, ZERO);
  const tier = first.blockSize === undefined ? charge.text : { ...charge.text, blockSize: decimalText(first.blockSize), blocks: '0' };
  return price.model === 'graduated'
    ? { amount: charge.amount, detail: { model: 'graduated', tiers: [tier] } }
    : { amount: charge.amount, detail: { model: 'volume', tier } };
}
