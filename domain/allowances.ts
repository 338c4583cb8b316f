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
import { Dec, formatMoney, toDecimal } from './money';

/** The billing period an immediate plan change split, as recorded with the change. */
export interface SplitPeriod {
  readonly start: Date;
  readonly end: Date;
}

/**
 * The stretch's share of its billing period: what was left of the period where it starts (all of it, unless a
 * change starts it) less what was left where a change ends it (nothing, else), each over its period's length; 1
 * when no change touches it.
 *
 * Counted as the fees are prorated (domain/proration.ts: the new plan's fee for the time left at the change that
 * starts the stretch, credited back for the time left at the change that ends it), each end in the period its
 * change recorded. A resume from a pause moves the period later by the paused time, so the two changes around a
 * pause record different periods: measured from the stretch's start to its end in the first change's period, the
 * share counted the paused time (which the fees give back), and the shares of one period summed to more than one
 * whole bucket (a change, a 10-day pause and a change back: 20/31 of the bucket for 10 days in force).
 */
export function allowanceShare(stretch: { readonly start: Date }, splits: { readonly startedBy?: SplitPeriod; readonly endedBy?: { readonly at: Date; readonly period: SplitPeriod } }): Dec {
  if (!splits.startedBy && !splits.endedBy) return new Dec(1);
  // What is left of `period` after `at`, as a fraction (ms over the period's length); null for an empty period.
  const left = (period: SplitPeriod, at: Date): { num: Dec; den: Dec } | null => {
    const length = period.end.getTime() - period.start.getTime();
    if (length <= 0) return null;
    const from = Math.min(Math.max(at.getTime(), period.start.getTime()), period.end.getTime());
    return { num: new Dec(period.end.getTime() - from), den: new Dec(length) };
  };
  const atStart = splits.startedBy ? left(splits.startedBy, stretch.start) : { num: new Dec(1), den: new Dec(1) };
  const atEnd = splits.endedBy ? left(splits.endedBy.period, splits.endedBy.at) : { num: new Dec(0), den: new Dec(1) };
  if (!atStart || !atEnd) return new Dec(1);
  // On one denominator, so a stretch inside one period is exactly (end - start) / length, as before.
  const share = atStart.num.times(atEnd.den).minus(atEnd.num.times(atStart.den)).div(atStart.den.times(atEnd.den));
  return Dec.min(Dec.max(share, new Dec(0)), new Dec(1));
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
  /** The share itself, below 1: rating cuts each charge's included units and min/max amounts to it (rating.ts). */
  readonly periodShare?: string;
}

/**
 * The plan's allowances for a stretch with this share of the period, each rounded to the currency (half up, as
 * every line), and the share for the charges' own per-period terms. A whole period's are the plan's own, unchanged.
 */
export function stretchAllowances(
  plan: { readonly currency: string; readonly flat_fee: string; readonly charges: unknown; readonly settings: unknown },
  share: Dec = new Dec(1),
): StretchAllowances {
  const creditBucket = ((plan.settings ?? {}) as PlanSettings).creditBucket;
  const commitment = commitmentTerms(plan);
  const whole = { ...(creditBucket === undefined ? {} : { creditBucket }), ...commitment };
  if (share.gte(1)) return whole;
  const part = (amount: string | undefined): string | undefined => (amount === undefined ? undefined : formatMoney(toDecimal(amount).times(share), plan.currency));
  return {
    ...(creditBucket === undefined ? {} : { creditBucket: part(creditBucket) }),
    ...(commitment.minimumCommitment === undefined ? {} : { minimumCommitment: part(commitment.minimumCommitment) }),
    ...(commitment.feesTowardCommitment === undefined ? {} : { feesTowardCommitment: part(commitment.feesTowardCommitment) }),
    periodShare: share.toString(),
  };
}

/** The terms open usage is rated with (no true-up before the period closes): stretchAllowances without the commitment. */
export function stretchUsageTerms(
  plan: { readonly currency: string; readonly settings: unknown; readonly charges: unknown },
  share: Dec = new Dec(1),
): { readonly creditBucket?: string; readonly periodShare?: string } {
  const creditBucket = ((plan.settings ?? {}) as PlanSettings).creditBucket;
  if (share.gte(1)) return creditBucket === undefined ? {} : { creditBucket };
  return { ...(creditBucket === undefined ? {} : { creditBucket: formatMoney(toDecimal(creditBucket).times(share), plan.currency) }), periodShare: share.toString() };
}

/** Only the credit bucket of stretchAllowances: the amount credit alerts are shares of. */
export function stretchCreditBucket(settings: unknown, currency: string, share: Dec = new Dec(1)): string | undefined {
  const creditBucket = ((settings ?? {}) as PlanSettings).creditBucket;
  if (creditBucket === undefined || share.gte(1)) return creditBucket;
  return formatMoney(toDecimal(creditBucket).times(share), currency);
}
