/**
 * Progressive billing (docs/pricing.md): a plan's usage thresholds, and the invoices they cause. Pure.
 *
 * Thresholds are amounts of the usage stretch's rated usage (since the period started, or since an immediate plan
 * change): a list ("100.00", "500.00") or every N (N, 2N, 3N, ...). When the accrued amount reaches a threshold not
 * invoiced yet, a threshold invoice bills what accrued minus what the stretch's earlier threshold invoices billed;
 * the invoice that closes the stretch rates all of it as before and subtracts every threshold invoice with one line
 * each, so the threshold invoices plus that invoice add up to the invoice without thresholds, to the minor unit.
 */
import Decimal from 'decimal.js';
import { Dec, formatMoney, isDecimalString, minorUnitExponent, roundMoney, sumMoney, toDecimal, ZERO } from './money';
import type { Charge } from './rating';
import type { PeriodShare } from './allowances';
import type { DimensionalUsage } from './dimensions';
import { DraftInvoiceLine, invoiceTotal, PeriodBounds, renewalInvoiceLines } from './invoice';

/** A plan's thresholds: a strictly increasing list of amounts, or one amount repeated without end. */
export type UsageThresholds = { readonly amounts: readonly string[] } | { readonly every: string };

/** Most amounts a list may hold (a plan wanting more uses `every`). */
export const MAX_THRESHOLD_AMOUNTS = 20;

/** Why the thresholds cannot be used, one message each; empty when they can. */
export function validateUsageThresholds(thresholds: UsageThresholds, currency: string): string[] {
  const amounts = 'every' in thresholds ? [thresholds.every] : [...thresholds.amounts];
  const path = 'every' in thresholds ? 'every' : 'amounts';
  if (amounts.length === 0) return [`${path}: at least one threshold`];
  if (amounts.length > MAX_THRESHOLD_AMOUNTS) return [`${path}: at most ${MAX_THRESHOLD_AMOUNTS} thresholds`];
  const problems: string[] = [];
  const exponent = minorUnitExponent(currency);
  amounts.forEach((amount, index) => {
    const at = 'every' in thresholds ? path : `${path}.${index}`;
    if (!isDecimalString(amount)) return problems.push(`${at}: ${amount} is not a decimal amount`);
    const value = toDecimal(amount);
    if (value.lte(0)) problems.push(`${at}: a threshold must be positive`);
    else if (value.decimalPlaces() > exponent) problems.push(`${at}: ${amount} has more decimals than ${currency} allows`);
    else if (index > 0 && isDecimalString(amounts[index - 1]) && value.lte(toDecimal(amounts[index - 1]))) {
      problems.push(`${at}: thresholds must increase`);
    }
    return undefined;
  });
  return problems;
}

/** The amount of threshold `index` (1-based), or null past the end of a list. */
export function thresholdAmount(thresholds: UsageThresholds, index: number): Decimal | null {
  if (index < 1) return null;
  if ('every' in thresholds) return toDecimal(thresholds.every).times(index);
  const amount = thresholds.amounts[index - 1];
  return amount === undefined ? null : toDecimal(amount);
}

/**
 * The highest threshold index there is: `invoices.threshold_index` is an int4. With `every` the index is accrued /
 * every, unbounded (every "0.01" on 21,474,836.48 USD passes it), and an index the column refuses made the threshold
 * activity fail on every retry (22003): the subscription needed attention and its billing stopped. Capped instead:
 * the capped threshold's invoice bills all that accrued (the amount is accrued minus earlier invoices, never
 * index x every), later thresholds are not invoiced (none is above the cap), and the closing invoice bills the rest.
 */
export const MAX_THRESHOLD_INDEX = 2_147_483_647;

/** The highest threshold the accrued amount has reached (1-based, at most MAX_THRESHOLD_INDEX), 0 when none. */
export function highestThresholdReached(thresholds: UsageThresholds, accrued: string | Decimal): number {
  const amount = toDecimal(accrued);
  if ('every' in thresholds) {
    const step = toDecimal(thresholds.every);
    return step.lte(0) || amount.lt(step) ? 0 : Decimal.min(amount.div(step).floor(), MAX_THRESHOLD_INDEX).toNumber();
  }
  let reached = 0;
  thresholds.amounts.forEach((threshold, index) => {
    if (amount.gte(toDecimal(threshold))) reached = index + 1;
  });
  return reached;
}

/** A threshold invoice of the stretch, as later invoices credit it. */
export interface BilledThreshold {
  readonly invoiceId: string;
  readonly number: string;
  readonly thresholdIndex: number;
  /** The invoice's total: what it billed. */
  readonly total: string;
}

export interface AccruedUsageInput {
  readonly planName: string;
  readonly currency: string;
  readonly charges: readonly Charge[];
  /** The usage stretch so far: from its start up to the instant it was rated. */
  readonly period: PeriodBounds;
  readonly usage: readonly DimensionalUsage[];
  readonly creditBucket?: string;
  /** The stretch's share of its period when a plan change cut it (rating.ts RatingInput.periodShare). */
  readonly periodShare?: PeriodShare;
}

/**
 * The stretch's usage rated so far, as invoice lines: the usage lines and the credit bucket's line, as the closing
 * invoice will rate them. No minimum commitment: a shortfall is known only when the stretch ends.
 */
export function accruedUsageLines(input: AccruedUsageInput): DraftInvoiceLine[] {
  return renewalInvoiceLines({
    planName: input.planName,
    currency: input.currency,
    flatFee: '0',
    charges: input.charges,
    flatFeePeriod: null,
    usage: { period: input.period, totals: input.usage },
    creditBucket: input.creditBucket,
    ...(input.periodShare === undefined ? {} : { periodShare: input.periodShare }),
  });
}

/** What the earlier threshold invoices of the stretch billed together. */
export function billedByThresholds(earlier: readonly BilledThreshold[], currency: string): Decimal {
  return sumMoney(earlier.map((billed) => roundMoney(toDecimal(billed.total), currency)));
}

export interface ThresholdDecision {
  /** The threshold this invoice is for: the highest one reached (lower ones it jumped over are covered by it). */
  readonly thresholdIndex: number;
  readonly threshold: string;
  /** What the invoice bills: accrued minus what earlier threshold invoices billed. */
  readonly amount: string;
}

/**
 * Whether the accrued amount calls for a threshold invoice: a threshold above every one invoiced in the stretch
 * is reached, and there is something left to bill. Null otherwise (nothing to do, as on a stale signal).
 */
export function decideThresholdInvoice(input: {
  readonly thresholds: UsageThresholds;
  readonly currency: string;
  readonly accrued: string;
  readonly earlier: readonly BilledThreshold[];
}): ThresholdDecision | null {
  const reached = highestThresholdReached(input.thresholds, input.accrued);
  const invoicedUpTo = Math.max(0, ...input.earlier.map((billed) => billed.thresholdIndex));
  if (reached <= invoicedUpTo) return null;
  const amount = toDecimal(input.accrued).minus(billedByThresholds(input.earlier, input.currency));
  if (amount.lte(ZERO)) return null;
  return {
    thresholdIndex: reached,
    threshold: formatMoney(thresholdAmount(input.thresholds, reached)!, input.currency),
    amount: formatMoney(amount, input.currency),
  };
}

/** One line per earlier threshold invoice, taking back what it billed (so usage is billed once). */
export function thresholdCreditLines(earlier: readonly BilledThreshold[], currency: string, period: PeriodBounds): DraftInvoiceLine[] {
  return [...earlier]
    .sort((a, b) => a.thresholdIndex - b.thresholdIndex)
    .filter((billed) => !toDecimal(billed.total).isZero())
    .map((billed) => ({
      kind: 'threshold_credit' as const,
      description: `Billed on threshold invoice ${billed.number}`,
      metricCode: null,
      quantity: '1',
      amount: formatMoney(roundMoney(toDecimal(billed.total), currency).neg(), currency),
      periodStart: period.start,
      periodEnd: period.end,
      breakdown: { thresholdInvoiceId: billed.invoiceId, thresholdInvoiceNumber: billed.number, thresholdIndex: billed.thresholdIndex },
    }));
}

/**
 * A threshold invoice's lines: the usage accrued so far, then a credit for each earlier threshold invoice of the
 * stretch. Its total is exactly the decision's amount.
 */
export function thresholdInvoiceLines(input: {
  readonly accrued: readonly DraftInvoiceLine[];
  readonly earlier: readonly BilledThreshold[];
  readonly currency: string;
  readonly period: PeriodBounds;
}): DraftInvoiceLine[] {
  return [...input.accrued, ...thresholdCreditLines(input.earlier, input.currency, input.period)];
}

/** The accrued amount of rated lines (what thresholds are compared with), as a money string. */
export function accruedAmount(lines: readonly DraftInvoiceLine[], currency: string): string {
  return invoiceTotal(lines, currency);
}

/** Reads a plan's stored thresholds (settings.usageThresholds); null when the plan bills only at period end. */
export function usageThresholdsOf(settings: unknown): UsageThresholds | null {
  const stored = (settings as { usageThresholds?: unknown } | null)?.usageThresholds as { amounts?: unknown; every?: unknown } | undefined;
  if (!stored) return null;
  if (typeof stored.every === 'string') return { every: stored.every };
  if (Array.isArray(stored.amounts) && stored.amounts.every((amount) => typeof amount === 'string')) return { amounts: stored.amounts as string[] };
  return null;
}

/** The minor unit of a currency as a Decimal step (0.01 for USD), for tests and generators. */
export function minorUnit(currency: string): Decimal {
  return new Dec(10).pow(-minorUnitExponent(currency));
}
