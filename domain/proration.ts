/**
 * Proration and discounts: the invoice lines for the part of a period that is left. Pure.
 *
 * Time is counted to the second: the share of a period left after `from` is
 * (end - from) / (end - start) in whole seconds, so a customer can redo the sum from the dates on the invoice.
 */
import Decimal from 'decimal.js';
import type { DraftInvoiceLine, PeriodBounds } from './invoice';
import { Dec, formatMoney, toDecimal } from './money';

const wholeSeconds = (from: Date, to: Date): number => Math.max(0, Math.floor((to.getTime() - from.getTime()) / 1000));

export interface ProrationShare {
  readonly remainingSeconds: number;
  readonly periodSeconds: number;
  readonly factor: Decimal;
}

/** The share of `period` left after `from` (clamped to the period). */
export function remainingShare(period: PeriodBounds, from: Date): ProrationShare {
  const start = new Date(period.start);
  const end = new Date(period.end);
  const periodSeconds = wholeSeconds(start, end);
  const clampedFrom = from < start ? start : from > end ? end : from;
  const remainingSeconds = wholeSeconds(clampedFrom, end);
  const factor = periodSeconds === 0 ? new Dec(0) : new Dec(remainingSeconds).dividedBy(periodSeconds);
  return { remainingSeconds, periodSeconds, factor };
}

export interface ProratedFeeInput {
  readonly description: string;
  readonly fullFee: string;
  readonly currency: string;
  readonly period: PeriodBounds;
  readonly from: Date;
  /** -1 for a credit of unused time, +1 for a charge for the time left. */
  readonly sign: 1 | -1;
}

/** One prorated flat-fee line for [from, period end), rounded once. No line when nothing is left to prorate. */
export function proratedFeeLine(input: ProratedFeeInput): DraftInvoiceLine | null {
  const share = remainingShare(input.period, input.from);
  const exact = toDecimal(input.fullFee).times(share.factor).times(input.sign);
  if (exact.isZero()) return null;
  return {
    kind: 'proration',
    description: input.description,
    metricCode: null,
    quantity: share.factor.toDecimalPlaces(12).toString(),
    amount: formatMoney(exact, input.currency),
    periodStart: new Date(Math.max(new Date(input.period.start).getTime(), input.from.getTime())).toISOString(),
    periodEnd: input.period.end,
    breakdown: {
      fullFee: input.fullFee,
      remainingSeconds: share.remainingSeconds,
      periodSeconds: share.periodSeconds,
      exactAmount: exact.toString(),
    },
  };
}

export interface UnusedTimeCreditInput {
  readonly planName: string;
  readonly fullFee: string;
  /** The retention discount the period's invoice gave the fee, if any: the customer paid the fee less it. */
  readonly percentOff: string | null;
  readonly currency: string;
  readonly period: PeriodBounds;
  readonly from: Date;
}

/**
 * The credit for the unused part of a period's fee (a cancellation now, the old plan of an immediate change): a share
 * of what was paid, after a retention discount, not of the list price. Exact until the line is rounded.
 */
export function unusedTimeCredit(input: UnusedTimeCreditInput): DraftInvoiceLine | null {
  const paid = input.percentOff === null ? input.fullFee : toDecimal(input.fullFee).times(new Dec(100).minus(toDecimal(input.percentOff))).dividedBy(100).toString();
  return proratedFeeLine({
    description: input.percentOff === null ? `Unused time on ${input.planName}` : `Unused time on ${input.planName} (after the ${input.percentOff} % retention discount)`,
    fullFee: paid,
    currency: input.currency,
    period: input.period,
    from: input.from,
    sign: -1,
  });
}

export interface PlanChangeProrationInput {
  readonly currency: string;
  readonly period: PeriodBounds;
  readonly changeAt: Date;
  /** The old plan's fee, and the retention discount its period's invoice gave it (none when absent). */
  readonly oldPlan: { readonly name: string; readonly recurringFee: string; readonly percentOff?: string | null };
  readonly newPlan: { readonly name: string; readonly recurringFee: string };
}

/**
 * An immediate plan change mid-period: credit the unused part of the old plan's fee (as paid) and charge the new
 * plan's fee for the same remaining time.
 */
export function planChangeProrationLines(input: PlanChangeProrationInput): DraftInvoiceLine[] {
  const credit = unusedTimeCredit({
    planName: input.oldPlan.name,
    fullFee: input.oldPlan.recurringFee,
    percentOff: input.oldPlan.percentOff ?? null,
    currency: input.currency,
    period: input.period,
    from: input.changeAt,
  });
  const charge = proratedFeeLine({
    description: `Remaining time on ${input.newPlan.name}`,
    fullFee: input.newPlan.recurringFee,
    currency: input.currency,
    period: input.period,
    from: input.changeAt,
    sign: 1,
  });
  return [credit, charge].filter((line): line is DraftInvoiceLine => line !== null);
}

/**
 * A percentage discount on an invoice's lines (a retention offer: "30 % off the next three periods"), as one
 * negative line computed from the already-rounded lines and rounded once itself.
 */
export function discountLine(
  lines: readonly DraftInvoiceLine[],
  percentOff: string,
  currency: string,
  period: PeriodBounds,
): DraftInvoiceLine | null {
  const base = lines.reduce<Decimal>((sum, line) => sum.plus(toDecimal(line.amount)), new Dec(0));
  if (base.lte(0)) return null;
  const exact = base.times(toDecimal(percentOff)).dividedBy(100).negated();
  return {
    kind: 'discount',
    description: `${percentOff} % retention discount`,
    metricCode: null,
    quantity: '1',
    amount: formatMoney(exact, currency),
    periodStart: period.start,
    periodEnd: period.end,
    breakdown: { discountedAmount: formatMoney(base, currency), percentOff },
  };
}
