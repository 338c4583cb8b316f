/**
 * A plan's allowances (its credit bucket and its minimum commitment, with the fees counted toward it) are per
 * billing period. An immediate plan change splits the period into usage stretches, each rated and invoiced on its
 * own; each stretch gets the share of its plan's allowances that its part of the period's time is. Before, each
 * stretch got all of them: a change on day 2 paid two whole minimum commitments in one month, and switching plans
 * back and forth granted a fresh credit bucket each time. Pure.
 *
 * Only a plan change cuts a share: a stretch that ends otherwise (at the period's end, a cancellation, or not yet:
 * an open stretch) counts to its period's end, so a cancellation now keeps the allowances it had (as before).
 */
import { commitmentTerms, type PlanSettings } from './plan-terms';
import type { DimensionalCharge } from './dimensions';
import { Dec, formatMoney, minorUnitExponent, toDecimal } from './money';

/** The billing period an immediate plan change split, as recorded with the change. */
export interface SplitPeriod {
  readonly start: Date;
  readonly end: Date;
}

/**
 * A stretch's share of its billing period, as the fractions of the period left where it starts and where it ends
 * (`fraction` = leftAtStart − leftAtEnd, its part of the period's time). Decimal strings, so it crosses an activity
 * or a RatingInput as it is.
 *
 * The ends, not only the fraction, because each amount is cut per END: a stretch's part of an amount X is
 * round(X × leftAtStart) − round(X × leftAtEnd). The stretches of one period meet at their ends (one's leftAtEnd is
 * the next one's leftAtStart), so the parts of one plan's amount telescope to the whole exactly. Rounding
 * X × fraction per stretch drifted: a 0.05 bucket split at mid-period on the same plan gave 0.03 + 0.03 = 0.06, a
 * 10.00 one 5.00 + 5.01, and a yen per stretch in JPY.
 */
export interface PeriodShare {
  readonly fraction: string;
  readonly leftAtStart: string;
  readonly leftAtEnd: string;
}

/** The share of a stretch no plan change touches: the plan's own amounts, unchanged. */
export const WHOLE_PERIOD: PeriodShare = Object.freeze({ fraction: '1', leftAtStart: '1', leftAtEnd: '0' });

/** Whether the share is the whole period (nothing to cut). */
export function isWholePeriod(share: PeriodShare | undefined): boolean {
  return share === undefined || (new Dec(share.leftAtStart).gte(1) && new Dec(share.leftAtEnd).lte(0));
}

/**
 * The stretch's part of `amount`, per end: round(amount × leftAtStart) − round(amount × leftAtEnd), each half up to
 * `decimals`, never below 0. A whole period's part is the amount itself (already at most `decimals` digits).
 */
export function partOfPeriod(amount: Dec, share: PeriodShare, decimals: number): Dec {
  if (isWholePeriod(share)) return amount;
  const clampUnit = (text: string): Dec => Dec.min(Dec.max(new Dec(text), new Dec(0)), new Dec(1));
  const leftAt = (text: string): Dec => amount.times(clampUnit(text)).toDecimalPlaces(decimals, Dec.ROUND_HALF_UP);
  return Dec.max(leftAt(share.leftAtStart).minus(leftAt(share.leftAtEnd)), new Dec(0));
}

/**
 * The stretch's share of its billing period: what was left of the period where it starts (all of it, unless a
 * change starts it) and what was left where a change ends it (nothing, else), each over its period's length;
 * the whole period when no change touches it.
 *
 * Counted as the fees are prorated (domain/proration.ts: the new plan's fee for the time left at the change that
 * starts the stretch, credited back for the time left at the change that ends it), each end in the period its
 * change recorded. A resume from a pause moves the period later by the paused time, so the two changes around a
 * pause record different periods: measured from the stretch's start to its end in the first change's period, the
 * share counted the paused time (which the fees give back), and the shares of one period summed to more than one
 * whole bucket (a change, a 10-day pause and a change back: 20/31 of the bucket for 10 days in force). Each end is
 * the same value for the two stretches it separates (the same change and period), so the parts telescope.
 */
export function allowanceShare(stretch: { readonly start: Date }, splits: { readonly startedBy?: SplitPeriod; readonly endedBy?: { readonly at: Date; readonly period: SplitPeriod } }): PeriodShare {
  if (!splits.startedBy && !splits.endedBy) return WHOLE_PERIOD;
  // What is left of `period` after `at`, as a fraction (ms over the period's length); null for an empty period.
  const left = (period: SplitPeriod, at: Date): { num: Dec; den: Dec } | null => {
    const length = period.end.getTime() - period.start.getTime();
    if (length <= 0) return null;
    const from = Math.min(Math.max(at.getTime(), period.start.getTime()), period.end.getTime());
    return { num: new Dec(period.end.getTime() - from), den: new Dec(length) };
  };
  const atStart = splits.startedBy ? left(splits.startedBy, stretch.start) : { num: new Dec(1), den: new Dec(1) };
  const atEnd = splits.endedBy ? left(splits.endedBy.period, splits.endedBy.at) : { num: new Dec(0), den: new Dec(1) };
  if (!atStart || !atEnd) return WHOLE_PERIOD;
  // On one denominator, so a stretch inside one period is exactly (end - start) / length, as before.
  const fraction = atStart.num.times(atEnd.den).minus(atEnd.num.times(atStart.den)).div(atStart.den.times(atEnd.den));
  return {
    fraction: Dec.min(Dec.max(fraction, new Dec(0)), new Dec(1)).toString(),
    leftAtStart: atStart.num.div(atStart.den).toString(),
    leftAtEnd: atEnd.num.div(atEnd.den).toString(),
  };
}

/**
 * Whether the plan has an allowance a share could cut (a bucket, a commitment, or a charge's included units or
 * min/max amounts): else no share needs looking up.
 */
export function hasAllowances(plan: { readonly settings: unknown; readonly charges: unknown }): boolean {
  const terms = (plan.settings ?? {}) as PlanSettings;
  if (terms.creditBucket !== undefined || terms.minimumCommitment !== undefined) return true;
  const charges = Array.isArray(plan.charges) ? (plan.charges as DimensionalCharge[]) : [];
  return charges.some(
    (charge) =>
      charge.includedUnits !== undefined ||
      charge.minAmount !== undefined ||
      charge.maxAmount !== undefined ||
      (charge.dimensions?.prices ?? []).some((price) => price.includedUnits !== undefined),
  );
}

export interface StretchAllowances {
  readonly creditBucket?: string;
  readonly minimumCommitment?: string;
  readonly feesTowardCommitment?: string;
  /** The share itself, when not the whole period: rating cuts each charge's included units and min/max amounts by it (rating.ts). */
  readonly periodShare?: PeriodShare;
}

/**
 * The plan's allowances for a stretch with this share of the period, each its per-end part (partOfPeriod) rounded
 * to the currency (half up, as every line), and the share for the charges' own per-period terms. A whole period's
 * are the plan's own, unchanged.
 */
export function stretchAllowances(
  plan: { readonly currency: string; readonly flat_fee: string; readonly charges: unknown; readonly settings: unknown },
  share: PeriodShare = WHOLE_PERIOD,
): StretchAllowances {
  const creditBucket = ((plan.settings ?? {}) as PlanSettings).creditBucket;
  const commitment = commitmentTerms(plan);
  const whole = { ...(creditBucket === undefined ? {} : { creditBucket }), ...commitment };
  if (isWholePeriod(share)) return whole;
  const part = (amount: string | undefined): string | undefined => (amount === undefined ? undefined : moneyPart(amount, share, plan.currency));
  return {
    ...(creditBucket === undefined ? {} : { creditBucket: part(creditBucket) }),
    ...(commitment.minimumCommitment === undefined ? {} : { minimumCommitment: part(commitment.minimumCommitment) }),
    ...(commitment.feesTowardCommitment === undefined ? {} : { feesTowardCommitment: part(commitment.feesTowardCommitment) }),
    periodShare: share,
  };
}

/** The terms open usage is rated with (no true-up before the period closes): stretchAllowances without the commitment. */
export function stretchUsageTerms(
  plan: { readonly currency: string; readonly settings: unknown; readonly charges: unknown },
  share: PeriodShare = WHOLE_PERIOD,
): { readonly creditBucket?: string; readonly periodShare?: PeriodShare } {
  const creditBucket = ((plan.settings ?? {}) as PlanSettings).creditBucket;
  if (isWholePeriod(share)) return creditBucket === undefined ? {} : { creditBucket };
  return { ...(creditBucket === undefined ? {} : { creditBucket: moneyPart(creditBucket, share, plan.currency) }), periodShare: share };
}

/** Only the credit bucket of stretchAllowances: the amount credit alerts are shares of. */
export function stretchCreditBucket(settings: unknown, currency: string, share: PeriodShare = WHOLE_PERIOD): string | undefined {
  const creditBucket = ((settings ?? {}) as PlanSettings).creditBucket;
  if (creditBucket === undefined || isWholePeriod(share)) return creditBucket;
  return moneyPart(creditBucket, share, currency);
}

/** A money amount's per-end part, as a money string of the currency. */
function moneyPart(amount: string, share: PeriodShare, currency: string): string {
  return formatMoney(partOfPeriod(toDecimal(amount), share, minorUnitExponent(currency)), currency);
}
