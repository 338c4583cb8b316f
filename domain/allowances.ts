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
import { Dec, formatMoney, toDecimal } from './money';

/** The billing period an immediate plan change split, as recorded with the change. */
export interface SplitPeriod {
  readonly start: Date;
  readonly end: Date;
}

/**
 * The stretch's share of its billing period: from where it starts (the period's start, unless a change starts it)
 * to where a change ends it (else the period's end), over the period's length; 1 when no change touches it.
 */
export function allowanceShare(stretch: { readonly start: Date }, splits: { readonly startedBy?: SplitPeriod; readonly endedBy?: { readonly at: Date; readonly period: SplitPeriod } }): Dec {
  const period = splits.startedBy ?? splits.endedBy?.period;
  if (!period) return new Dec(1);
  const length = period.end.getTime() - period.start.getTime();
  if (length <= 0) return new Dec(1);
  const from = splits.startedBy ? stretch.start.getTime() : period.start.getTime();
  const to = splits.endedBy ? splits.endedBy.at.getTime() : period.end.getTime();
  const share = new Dec(Math.max(0, Math.min(to, period.end.getTime()) - Math.max(from, period.start.getTime()))).div(length);
  return Dec.min(share, new Dec(1));
}

/** Whether the plan has an allowance a share could cut (a bucket or a commitment): else no share needs looking up. */
export function hasAllowances(settings: unknown): boolean {
  const terms = (settings ?? {}) as PlanSettings;
  return terms.creditBucket !== undefined || terms.minimumCommitment !== undefined;
}

export interface StretchAllowances {
  readonly creditBucket?: string;
  readonly minimumCommitment?: string;
  readonly feesTowardCommitment?: string;
}

/**
 * The plan's allowances for a stretch with this share of the period, each rounded to the currency (half up, as
 * every line). A whole period's are the plan's own, unchanged.
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
  };
}

/** Only the credit bucket of stretchAllowances: what the usage views and the wallet rate open usage with. */
export function stretchCreditBucket(settings: unknown, currency: string, share: Dec = new Dec(1)): string | undefined {
  const creditBucket = ((settings ?? {}) as PlanSettings).creditBucket;
  if (creditBucket === undefined || share.gte(1)) return creditBucket;
  return formatMoney(toDecimal(creditBucket).times(share), currency);
}
