/**
 * The rating engine: a plan's charges and one period's usage in, invoice lines out. Pure and deterministic:
 * the same input always yields the same lines in the same order (charge order, then credit, then true-up).
 *
 * Money rules (binding): every amount is exact until its invoice line, which is rounded once, half-up, to the
 * currency's minor unit. Totals are sums of rounded lines, so a total always equals the sum of its lines.
 *
 * Decisions a billing engineer will look for:
 * - Included units come off the quantity before the price model. For tiered models the billable quantity
 *   starts at tier 1: 100 included units + 150 used on "first 100 at 0, then 1.00" bills 50 units at 0.
 * - A graduated tier's flat fee is charged only when the tier holds units; volume charges its tier's flat fee
 *   only for a non-zero quantity. Zero usage always rates to 0.
 * - The credit bucket (usage included in the plan's fee) is applied after rating, as one negative line capped
 *   at the usage total, so it never makes the invoice negative. It is allocated to usage lines in charge order.
 * - The minimum commitment is measured against usage *before* the credit bucket: usage paid for by the plan's
 *   included credit is still spend toward the commitment; measuring after the credit would charge the customer
 *   twice for it. The true-up line is not reduced by the credit.
 * - With `feesTowardCommitment` (a plan's `commitmentIncludesFees`) the period's recurring fees count toward the
 *   commitment too: shortfall = commitment − usage − fees.
 * - Per-charge options (charge-options.ts): `minAmount`/`maxAmount` bound a charge after its price model, and
 *   `firstTierFeeAtZeroUsage` bills a graduated/volume first tier's flat fee at zero usage (the one exception to
 *   "zero usage rates to 0").
 * - Flat charges are billed in advance, so `rateUsage` skips them; `flatFeeLine` builds their line.
 * - Usage for a metric with no charge is not billed (the plan decides what is priced); a charge with no
 *   usage rates to a zero line, so every priced metric shows on the invoice.
 */
import { Dec, ZERO, formatMoney, isDecimalString, isSupportedCurrency, minorUnitExponent, roundMoney, sumMoney, toDecimal } from './money';
import {
  decimalText,
  priceFirstTierAtZeroUsage,
  pricePercentage,
  pricePercentageOfTotal,
  percentageRatesFromTotal,
  priceQuantity,
  type PercentageDetail,
  type PercentageFreeDetail,
  type QuantityDetail,
} from './price-calculators';
import { applyChargeBounds, chargeBoundsDigitErrors, validateChargeOptions, type ChargeBoundsDetail } from './charge-options';
import { parseDecimal, validatePriceModel, type PriceModel, type UsagePriceModel } from './price-models';
import { formatMinorUnits, rateChargeInFixedPoint } from './fixed-point-rating';
import { CostPlusError, priceCostPlus, type CostPlusDetail } from './cost-plus';
import type { CostSegment } from './cost-tables';
import { isWholePeriod, partOfPeriod, type PeriodShare } from './allowances';

export interface Charge {
  readonly chargeId?: string;
  readonly metricCode: string;
  readonly displayName?: string;
  readonly price: PriceModel;
  /** Free units per period, subtracted from the quantity before the price model. Not for percentage/flat. */
  readonly includedUnits?: string;
  /** Bounds on the charge's amount per period, after its price model (domain/charge-options.ts). */
  readonly minAmount?: string;
  readonly maxAmount?: string;
  /** Graduated/volume: bill the first tier's flat fee even at zero billable usage (domain/charge-options.ts). */
  readonly firstTierFeeAtZeroUsage?: boolean;
}

export interface UsageForCharge {
  readonly metricCode: string;
  /** The period's aggregated quantity. For a percentage charge: the number of events (= eventValues.length). */
  readonly quantity: string;
  /** Per-event reported values; required by percentage charges, ignored by the others. */
  readonly eventValues?: readonly string[];
  /**
   * The sum of the event values, which stands in for eventValues where a percentage charge has no per-event
   * minFee/maxFee and no free allowance (every event then pays rate x value, so the sum is enough): the running
   * totals hold sums.
   */
  readonly valueTotal?: string;
  /** The quantity split by the cost table in effect at its events' time; required by cost_plus charges. */
  readonly costs?: readonly CostSegment[];
  /** The currency of the cost tables behind `costs`; absent on closures recorded before tables had one. */
  readonly costCurrency?: string;
}

export interface RatingInput {
  readonly currency: string;
  readonly charges: readonly Charge[];
  readonly usage: readonly UsageForCharge[];
  /** Usage included per period, in money, with at most the currency's minor digits. */
  readonly creditBucket?: string;
  /** Minimum usage spend per period, in money, with at most the currency's minor digits. */
  readonly minimumCommitment?: string;
  /**
   * Recurring fees billed for the same period that count toward the minimum commitment (a plan with
   * `commitmentIncludesFees`); absent: the commitment counts usage only.
   */
  readonly feesTowardCommitment?: string;
  /**
   * The share of its billing period the rated stretch is, when an immediate plan change cut the period
   * (domain/allowances.ts `allowanceShare`: the fractions left at its start and end, as decimal strings); absent: the
   * whole period. Each charge's per-period terms (its included units, its min and max amounts) are cut to it, as the
   * credit bucket and the commitment are: given whole to each stretch, a change mid-month billed both plans' whole
   * minimums (30.00 + 60.00 for a month whose minimum by time was 50.00) and granted the included units twice. Cut
   * per end (allowances.ts partOfPeriod), so the parts of one plan's term over the period add up to the whole.
   */
  readonly periodShare?: PeriodShare;
}

export interface RatingResult {
  readonly lines: readonly RatedLine[];
  /** Sum of the rounded usage lines, before credit and true-up. */
  readonly usageTotal: string;
  /** Sum of all lines: usage − credit + true-up. Never negative. */
  readonly subtotal: string;
  readonly creditApplied: string;
  readonly creditRemaining: string;
}

export type QuantityBreakdown = QuantityDetail & {
  readonly includedUnits: string;
  readonly billableQuantity: string;
  /** Exact, before the line's single rounding. */
  readonly amount: string;
};

export type PercentageBreakdown = PercentageDetail & Partial<PercentageFreeDetail> & { readonly amount: string };

export type CostPlusBreakdown = CostPlusDetail & { readonly amount: string };

/** `chargeBounds` only on a charge with minAmount/maxAmount; `amount` is then the bounded amount. */
export type UsageBreakdown = (QuantityBreakdown | PercentageBreakdown | CostPlusBreakdown) & { readonly chargeBounds?: ChargeBoundsDetail };

export interface CreditBreakdown {
  readonly bucket: string;
  readonly applied: string;
  readonly remaining: string;
  /** How the credit covers the usage lines, in charge order. */
  readonly allocations: readonly { readonly metricCode: string; readonly chargeId?: string; readonly amount: string }[];
}

export interface CommitmentBreakdown {
  readonly minimumCommitment: string;
  /** Rated usage before the credit bucket. */
  readonly usageTotal: string;
  /** Only when the plan counts its recurring fees toward the commitment: the fees counted. */
  readonly feesCounted?: string;
  readonly shortfall: string;
}

export interface FlatFeeBreakdown {
  readonly model: 'flat';
  readonly fullAmount: string;
  readonly prorationFactor: string;
  /** Exact, before the line's single rounding. */
  readonly amount: string;
}

interface LineBase {
  readonly description: string;
  readonly quantity: string;
  /** Rounded once, formatted with exactly the currency's minor digits. */
  readonly amount: string;
  readonly chargeId?: string;
}

export type RatedLine =
  | (LineBase & { readonly kind: 'usage'; readonly metricCode: string; readonly breakdown: UsageBreakdown })
  | (LineBase & { readonly kind: 'flat_fee'; readonly breakdown: FlatFeeBreakdown })
  | (LineBase & { readonly kind: 'credit'; readonly breakdown: CreditBreakdown })
  | (LineBase & { readonly kind: 'commitment_true_up'; readonly breakdown: CommitmentBreakdown });

export type UsageLine = Extract<RatedLine, { kind: 'usage' }>;

export type RatingErrorCode =
  | 'unsupported_currency'
  | 'invalid_charge'
  | 'invalid_quantity'
  | 'missing_event_values'
  | 'invalid_event_value'
  | 'event_count_mismatch'
  | 'missing_cost_segments'
  | 'cost_currency_mismatch'
  | 'duplicate_usage'
  | 'invalid_money_amount'
  | 'invalid_proration_factor'
  | 'not_a_flat_charge'
  | 'amount_out_of_range';

export class RatingError extends Error {
  constructor(
    readonly code: RatingErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RatingError';
  }
}

export const CREDIT_LINE_DESCRIPTION = 'Included usage credit';
export const TRUE_UP_LINE_DESCRIPTION = 'Minimum commitment true-up';

/** Why a charge is unusable (its price included); empty when it is valid. */
export function validateCharge(charge: Charge): string[] {
  const errors: string[] = [];
  if (typeof charge.metricCode !== 'string' || charge.metricCode === '') errors.push('metricCode is required');
  errors.push(...validatePriceModel(charge.price).map((message) => `price.${message}`));
  if (charge.includedUnits !== undefined) {
    const included = parseDecimal(charge.includedUnits);
    if (included === undefined || included.lt(0)) errors.push('includedUnits must be a non-negative decimal string');
    const model = charge.price?.model;
    if (model === 'percentage' || model === 'flat' || model === 'cost_plus') errors.push(`includedUnits does not apply to ${model} pricing`);
  }
  errors.push(...validateChargeOptions(charge));
  return errors;
}

export function rateUsage(input: RatingInput): RatingResult {
  const { currency } = input;
  requireCurrency(currency);
  requireCostCurrency(input.usage, currency);
  const creditBucket = optionalMoney('creditBucket', input.creditBucket, currency);
  const minimumCommitment = optionalMoney('minimumCommitment', input.minimumCommitment, currency);
  const feesTowardCommitment = input.feesTowardCommitment === undefined ? undefined : optionalMoney('feesTowardCommitment', input.feesTowardCommitment, currency);
  const usageByMetric = indexUsage(input.usage);
  const exponent = minorUnitExponent(currency);

  // Each line from the BigInt fast path when it can give exactly the Decimal path's line (fixed-point-rating.ts).
  let fastTotalMinor: bigint | undefined = 0n;
  const share = input.periodShare;
  const usageLines = input.charges
    .map(requireValidCharge)
    .map((charge) => (share === undefined || isWholePeriod(share) ? charge : chargeForShare(charge, share, currency)))
    .filter(isUsageCharge)
    .map((charge) => {
      const usage = usageByMetric.get(charge.metricCode);
      const fast = rateChargeInFixedPoint(charge, usage, exponent);
      if (fast === undefined) {
        fastTotalMinor = undefined;
        return rateCharge(charge, usage, currency);
      }
      if (fastTotalMinor !== undefined) fastTotalMinor += fast.minor;
      return fast.line;
    });
  // (A line of 10^20 or more takes the Decimal path below, which refuses it: amount_out_of_range.)
  if (fastTotalMinor !== undefined && creditBucket.isZero() && minimumCommitment.isZero() && usageLines.every(isMoneyString)) {
    // No credit line and no true-up: every total is the sum of the rounded usage lines.
    const total = formatMinorUnits(fastTotalMinor, exponent);
    const zero = formatMinorUnits(0n, exponent);
    return { lines: usageLines, usageTotal: total, subtotal: total, creditApplied: zero, creditRemaining: zero };
  }
  // A line of 10^20 or more is no money string (a valid price of 18 digits × a valid event value of 10^12 gets
  // there): summing it threw a TypeError, which the usage preview answered as a bare 500 and the invoice reported as
  // `invalid_data`. Refused here with a stable code instead, so a caller can say what is wrong (the invoice still
  // stops in needs_attention, now as amount_out_of_range).
  const outOfRange = usageLines.find((line) => !isMoneyString(line));
  if (outOfRange !== undefined) {
    // (The message keeps the old error's words, which tests and runbooks match.)
    throw new RatingError('amount_out_of_range', `usage of ${outOfRange.metricCode} rates to more ${currency} than an amount holds (below 10^20): not a decimal string: ${JSON.stringify(outOfRange.amount)}`);
  }
  const usageTotal = sumOfLines(usageLines);

  const credit = applyCreditBucket(usageLines, creditBucket, currency);
  const trueUp = commitmentTrueUp(usageTotal, minimumCommitment, currency, feesTowardCommitment);
  const lines: RatedLine[] = [...usageLines, ...(credit.line ? [credit.line] : []), ...(trueUp ? [trueUp] : [])];

  return {
    lines,
    usageTotal: formatMoney(usageTotal, currency),
    subtotal: formatMoney(sumOfLines(lines), currency),
    creditApplied: formatMoney(credit.applied, currency),
    creditRemaining: formatMoney(creditBucket.minus(credit.applied), currency),
  };
}

/** A cost preview is a rating of hypothetical usage: the same function, so previews never drift from invoices. */
export const previewCost = rateUsage;

/**
 * The line for a flat (recurring, billed-in-advance) charge. `prorationFactor` is the fraction of the period
 * served, in [0, 1]; the prorated amount is rounded once, like every line.
 */
export function flatFeeLine(input: { currency: string; charge: Charge; prorationFactor?: Dec }): RatedLine {
  const { currency, charge } = input;
  requireCurrency(currency);
  requireValidCharge(charge);
  if (charge.price.model !== 'flat') {
    throw new RatingError('not_a_flat_charge', `charge ${chargeLabel(charge)} is priced ${charge.price.model}, not flat`);
  }
  const factor = input.prorationFactor === undefined ? new Dec(1) : new Dec(input.prorationFactor);
  if (!factor.isFinite() || factor.lt(0) || factor.gt(1)) {
    throw new RatingError('invalid_proration_factor', `proration factor must be between 0 and 1, got ${factor.toString()}`);
  }
  const fullAmount = toDecimal(charge.price.amount);
  const exact = fullAmount.times(factor);
  const prorated = !factor.eq(1);
  return {
    kind: 'flat_fee',
    description: `${charge.displayName ?? charge.metricCode}${prorated ? ' (prorated)' : ''}`,
    quantity: '1',
    amount: formatMoney(exact, currency),
    ...chargeIdOf(charge),
    breakdown: {
      model: 'flat',
      fullAmount: decimalText(fullAmount),
      prorationFactor: decimalText(factor),
      amount: decimalText(exact),
    },
  };
}

type UsageCharge = Charge & { readonly price: UsagePriceModel };

function isUsageCharge(charge: Charge): charge is UsageCharge {
  return charge.price.model !== 'flat';
}

function rateCharge(charge: UsageCharge, usage: UsageForCharge | undefined, currency: string): UsageLine {
  const quantity = usage === undefined ? ZERO : parseQuantity(usage.quantity, charge.metricCode);
  const rated =
    charge.price.model === 'percentage'
      ? ratePercentage(charge.price, quantity, usage, charge.metricCode)
      : charge.price.model === 'cost_plus'
        ? rateCostPlus(charge.price, quantity, usage, charge.metricCode)
        : rateQuantity(charge.price, quantity, charge.includedUnits, charge.firstTierFeeAtZeroUsage === true);
  const breakdown = withChargeBounds(charge, rated, currency);
  return {
    kind: 'usage',
    description: charge.displayName ?? charge.metricCode,
    metricCode: charge.metricCode,
    quantity: decimalText(quantity),
    amount: formatMoney(new Dec(breakdown.amount), currency),
    ...chargeIdOf(charge),
    breakdown,
  };
}

function rateCostPlus(price: Extract<UsagePriceModel, { model: 'cost_plus' }>, quantity: Dec, usage: UsageForCharge | undefined, metricCode: string): CostPlusBreakdown {
  try {
    const { amount, detail } = priceCostPlus(price, quantity, usage?.costs);
    return { ...detail, amount: decimalText(amount) };
  } catch (error) {
    if (error instanceof CostPlusError) throw new RatingError('missing_cost_segments', `usage for ${metricCode}: ${error.message}`);
    throw error;
  }
}

function rateQuantity(
  price: Exclude<UsagePriceModel, { model: 'percentage' | 'cost_plus' }>,
  quantity: Dec,
  includedUnitsText: string | undefined,
  firstTierFeeAtZeroUsage = false,
): QuantityBreakdown {
  const includedUnits = toDecimal(includedUnitsText ?? '0');
  const billableQuantity = Dec.max(ZERO, quantity.minus(includedUnits));
  const atZeroWithFee = firstTierFeeAtZeroUsage && billableQuantity.isZero() && (price.model === 'graduated' || price.model === 'volume');
  const { amount, detail } = atZeroWithFee ? priceFirstTierAtZeroUsage(price) : priceQuantity(price, billableQuantity);
  return {
    ...detail,
    includedUnits: decimalText(includedUnits),
    billableQuantity: decimalText(billableQuantity),
    amount: decimalText(amount),
  };
}

function ratePercentage(
  price: Extract<UsagePriceModel, { model: 'percentage' }>,
  quantity: Dec,
  usage: UsageForCharge | undefined,
  metricCode: string,
): PercentageBreakdown {
  if (usage?.eventValues === undefined && usage?.valueTotal !== undefined && percentageRatesFromTotal(price)) {
    const total = parseDecimal(usage.valueTotal);
    if (total === undefined || total.lt(0) || !quantity.isInteger()) {
      throw new RatingError('invalid_event_value', `value total for ${metricCode} must be a non-negative decimal over a whole number of events`);
    }
    const { amount, detail } = pricePercentageOfTotal(price, quantity.toNumber(), total);
    return { ...detail, amount: decimalText(amount) };
  }
  const values = parseEventValues(usage?.eventValues, quantity, metricCode);
  const { amount, detail } = pricePercentage(price, values);
  return { ...detail, amount: decimalText(amount) };
}

/** Percentage pricing needs each event's value (min/max apply per event); the count must agree with quantity. */
function parseEventValues(eventValues: readonly string[] | undefined, quantity: Dec, metricCode: string): Dec[] {
  if (eventValues === undefined) {
    if (quantity.isZero()) return [];
    throw new RatingError('missing_event_values', `usage for ${metricCode} needs eventValues for percentage pricing`);
  }
  if (!quantity.eq(eventValues.length)) {
    throw new RatingError(
      'event_count_mismatch',
      `usage for ${metricCode} has quantity ${decimalText(quantity)} but ${eventValues.length} event values`,
    );
  }
  return eventValues.map((value) => {
    const parsed = parseDecimal(value);
    if (parsed === undefined || parsed.lt(0)) {
      throw new RatingError('invalid_event_value', `event value for ${metricCode} must be a non-negative decimal string, got ${JSON.stringify(value)}`);
    }
    return parsed;
  });
}

interface CreditApplication {
  readonly applied: Dec;
  readonly line?: RatedLine;
}

/** One negative line for the part of the bucket the usage consumed; allocated to usage lines in charge order. */
function applyCreditBucket(usageLines: readonly UsageLine[], bucket: Dec, currency: string): CreditApplication {
  let remaining = bucket;
  const allocations: CreditBreakdown['allocations'][number][] = [];
  for (const line of usageLines) {
    const covered = Dec.min(remaining, toDecimal(line.amount));
    if (covered.isZero()) continue;
    allocations.push({ metricCode: line.metricCode, ...chargeIdOf(line), amount: formatMoney(covered, currency) });
    remaining = remaining.minus(covered);
  }
  const applied = bucket.minus(remaining);
  if (applied.isZero()) return { applied };
  return {
    applied,
    line: {
      kind: 'credit',
      description: CREDIT_LINE_DESCRIPTION,
      quantity: '1',
      amount: formatMoney(applied.negated(), currency),
      breakdown: {
        bucket: formatMoney(bucket, currency),
        applied: formatMoney(applied, currency),
        remaining: formatMoney(remaining, currency),
        allocations,
      },
    },
  };
}

/** A charge's minAmount/maxAmount applied to its rated amount; the breakdown shows both (charge-options.ts). */
function withChargeBounds(charge: UsageCharge, rated: UsageBreakdown, currency: string): UsageBreakdown {
  if (charge.minAmount === undefined && charge.maxAmount === undefined) return rated;
  const digitErrors = chargeBoundsDigitErrors(charge, currency);
  if (digitErrors.length > 0) throw new RatingError('invalid_money_amount', `charge ${chargeLabel(charge)}: ${digitErrors.join('; ')}`);
  const { amount, detail } = applyChargeBounds(charge, new Dec(rated.amount));
  return { ...rated, amount: decimalText(amount), chargeBounds: detail };
}

function commitmentTrueUp(usageTotal: Dec, minimumCommitment: Dec, currency: string, feesTowardCommitment?: Dec): RatedLine | undefined {
  const shortfall = minimumCommitment.minus(usageTotal).minus(feesTowardCommitment ?? ZERO);
  if (shortfall.lte(0)) return undefined;
  return {
    kind: 'commitment_true_up',
    description: TRUE_UP_LINE_DESCRIPTION,
    quantity: '1',
    amount: formatMoney(shortfall, currency),
    breakdown: {
      minimumCommitment: formatMoney(minimumCommitment, currency),
      usageTotal: formatMoney(usageTotal, currency),
      ...(feesTowardCommitment === undefined ? {} : { feesCounted: formatMoney(feesTowardCommitment, currency) }),
      shortfall: formatMoney(shortfall, currency),
    },
  };
}

function isMoneyString(line: RatedLine): boolean {
  return isDecimalString(line.amount);
}

function sumOfLines(lines: readonly RatedLine[]): Dec {
  return sumMoney(lines.map((line) => toDecimal(line.amount)));
}

/**
 * Usage costed with another currency's tables is refused, never billed: its unit costs are not amounts in this
 * invoice's currency (a USD price list billed as euros). The store costs with the plan's currency only; this
 * guards a closure that recorded otherwise.
 */
export function requireCostCurrency(usage: readonly UsageForCharge[], currency: string): void {
  for (const entry of usage) {
    if (entry.costCurrency !== undefined && entry.costCurrency !== currency) {
      throw new RatingError('cost_currency_mismatch', `usage for ${entry.metricCode} was costed with ${entry.costCurrency} cost tables; it cannot be rated in ${currency}`);
    }
  }
}

function indexUsage(usage: readonly UsageForCharge[]): Map<string, UsageForCharge> {
  const byMetric = new Map<string, UsageForCharge>();
  for (const entry of usage) {
    if (byMetric.has(entry.metricCode)) {
      throw new RatingError('duplicate_usage', `usage for ${entry.metricCode} appears more than once`);
    }
    byMetric.set(entry.metricCode, entry);
  }
  return byMetric;
}

function requireCurrency(currency: string): void {
  if (!isSupportedCurrency(currency)) {
    throw new RatingError('unsupported_currency', `unsupported currency: ${JSON.stringify(currency)}`);
  }
}

/** Charges already found valid. Charges are immutable values (every field readonly), so once is enough. */
const validCharges = new WeakSet<Charge>();

/** Included units are cut to this many decimals (an event's value has at most 12): enough for any share of them. */
const SHARED_UNITS_DECIMALS = 12;

/**
 * A charge's per-period terms for a stretch with `share` of its period: its included units (to 12 decimals) and its
 * min and max amounts (to the currency's minor unit, half up, as the credit bucket's share), each its per-end part.
 */
function chargeForShare(charge: Charge, share: PeriodShare, currency: string): Charge {
  if (charge.includedUnits === undefined && charge.minAmount === undefined && charge.maxAmount === undefined) return charge;
  // Per end (round at the start's and the end's fraction left, then subtract), so one plan's stretches of a period
  // add up to its whole included units, minimum and maximum: rounding each stretch's product drifted (0.03 + 0.03
  // of a 0.05 minimum split in two).
  const part = (amount: string): Dec => partOfPeriod(toDecimal(amount), share, minorUnitExponent(currency));
  const minAmount = charge.minAmount === undefined ? undefined : part(charge.minAmount);
  const maxAmount = charge.maxAmount === undefined ? undefined : part(charge.maxAmount);
  return requireValidCharge({
    ...charge,
    ...(charge.includedUnits === undefined ? {} : { includedUnits: decimalText(partOfPeriod(toDecimal(charge.includedUnits), share, SHARED_UNITS_DECIMALS)) }),
    // Per-end parts of min <= max can come out a cent the other way (0.05 and 0.06 from half to a quarter left: 0.02
    // and 0.01), which the charge check refuses (invalid_charge, the invoice stopped): the maximum wins, as it does
    // when bounds meet (charge-options.ts applyChargeBounds).
    ...(minAmount === undefined ? {} : { minAmount: formatMoney(maxAmount === undefined ? minAmount : Dec.min(minAmount, maxAmount), currency) }),
    ...(maxAmount === undefined ? {} : { maxAmount: formatMoney(maxAmount, currency) }),
  });
}

function requireValidCharge(charge: Charge): Charge {
  if (validCharges.has(charge)) return charge;
  const errors = validateCharge(charge);
  if (errors.length > 0) {
    throw new RatingError('invalid_charge', `charge ${chargeLabel(charge)} is invalid: ${errors.join('; ')}`);
  }
  validCharges.add(charge);
  return charge;
}

function parseQuantity(text: string, metricCode: string): Dec {
  const quantity = parseDecimal(text);
  if (quantity === undefined || quantity.lt(0)) {
    throw new RatingError('invalid_quantity', `quantity for ${metricCode} must be a non-negative decimal string, got ${JSON.stringify(text)}`);
  }
  return quantity;
}

/** A non-negative amount already expressed in the currency's minor unit (a bucket of 20.005 USD is a typo, not a price). */
function optionalMoney(field: string, text: string | undefined, currency: string): Dec {
  if (text === undefined) return ZERO;
  const amount = parseDecimal(text);
  if (amount === undefined || amount.lt(0) || amount.decimalPlaces() > minorUnitExponent(currency)) {
    throw new RatingError(
      'invalid_money_amount',
      `${field} must be a non-negative ${currency} amount with at most ${minorUnitExponent(currency)} decimals, got ${JSON.stringify(text)}`,
    );
  }
  return roundMoney(amount, currency);
}

function chargeLabel(charge: Charge): string {
  return JSON.stringify(charge.chargeId ?? charge.metricCode);
}

/** `{ chargeId }` when there is one, so lines carry no `chargeId: undefined` keys. */
function chargeIdOf(source: { readonly chargeId?: string }): { chargeId?: string } {
  return source.chargeId === undefined ? {} : { chargeId: source.chargeId };
}
