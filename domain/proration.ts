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

/**
 * The fee a customer paid for a period whose invoice gave a retention discount (percent off): exact, rounded only on
 * the prorated line. A credit for unused time gives back a share of what was paid, not of the list price.
 */
export function feeAfterDiscount(fullFee: string, percentOff: string | null): string {
  if (percentOff === null) return fullFee;
  return toDecimal(fullFee).times(new Dec(100).minus(toDecimal(percentOff))).dividedBy(100).toString();
}

export interface PlanChangeProrationInput {
  readonly currency: string;
  readonly period: PeriodBounds;
  readonly changeAt: Date;
  /** The old plan's fee as paid for the period (after a retention discount), and its credit line's wording. */
  readonly oldPlan: { readonly name: string; readonly recurringFee: string; readonly creditDescription?: string };
  readonly newPlan: { readonly name: string; readonly recurringFee: string };
}

/**
 * An immediate plan change mid-period: credit the unused part of the old plan's fee and charge the new plan's
 * fee for the same remaining time.
 */
export function planChangeProrationLines(input: PlanChangeProrationInput): DraftInvoiceLine[] {
  const credit = proratedFeeLine({
    description: input.oldPlan.creditDescription ?? `Unused time on ${input.oldPlan.name}`,
    fullFee: input.oldPlan.recurringFee,
    currency: input.currency,
    period: input.period,
    from: input.changeAt,
    sign: -1,
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
