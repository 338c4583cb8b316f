/**
 * The usage terms of a plan version as stored in `plans.charges` and `plans.settings`, read in one place.
 */
import { roundMoney, sumMoney, toDecimal } from './money';
import { addIntervals, parseInterval } from './periods';
import type { Charge } from './rating';

export interface PlanSettings {
  /** Prepaid usage included per period, in money (the hybrid model). */
  readonly creditBucket?: string;
  /** Minimum usage spend per period; a true-up line makes up a shortfall. */
  readonly minimumCommitment?: string;
  /** Count the period's recurring fees (flat fee + flat charges) toward the minimum commitment. Default false. */
  readonly commitmentIncludesFees?: boolean;
  /** How long after a period ends late events are still counted in it (ISO-8601). Default PT1H. */
  readonly usageGracePeriod?: string;
  /** Offered once a year to a customer who asks to cancel. */
  readonly retentionOffer?: RetentionOfferTerms;
  /** Sent once, some time after a subscription ends. */
  readonly winBackOffer?: WinBackOfferTerms;
  /** On an immediate cancellation, credit the unused part of the period's flat fee. Default false. */
  readonly creditUnusedOnCancel?: boolean;
  /** Usage sent while paused: rejected at ingestion, or billed with the period. Default reject. */
  readonly usageWhilePaused?: 'reject' | 'bill';
  readonly dunning?: DunningTerms;
  /** Alert thresholds in percent of the credit bucket, e.g. ["50","80","100"]. */
  readonly creditAlertThresholds?: readonly string[];
  /** Usage spend per period above which ingestion refuses further usage (money). */
  readonly hardCap?: string;
}

export interface RetentionOfferTerms {
  /** e.g. "30" for 30 % off. */
  readonly percentOff: string;
  /** How many invoices the discount applies to. */
  readonly periods: number;
  /** How long the customer has to answer (ISO-8601), e.g. P7D. */
  readonly expiresAfter: string;
}

export interface WinBackOfferTerms {
  /** Delay after the subscription ends (ISO-8601), e.g. P30D. */
  readonly sendAfter: string;
  readonly expiresAfter: string;
}

export interface DunningTerms {
  /** Delays before each retry after a failed charge (ISO-8601), e.g. ["P1D","P3D","P5D","P7D"]. */
  readonly retryAfter: readonly string[];
  /** After the last failed retry: end the subscription, or suspend it (no new periods, usage rejected) until paid. */
  readonly finalAction: 'cancel' | 'suspend';
}

export const DEFAULT_DUNNING: DunningTerms = { retryAfter: ['P1D', 'P3D', 'P5D', 'P7D'], finalAction: 'cancel' };

export const DEFAULT_USAGE_GRACE_PERIOD = 'PT1H';

export function usageCharges(charges: readonly Charge[]): Charge[] {
  return charges.filter((charge) => charge.price.model !== 'flat');
}

export function recurringCharges(charges: readonly Charge[]): Charge[] {
  return charges.filter((charge) => charge.price.model === 'flat');
}

/**
 * The commitment inputs of rating for one period of a plan: the minimum commitment, and, when the plan sets
 * `commitmentIncludesFees`, its recurring fees (flat fee + flat charges, for a full period) counted toward it,
 * each rounded as its invoice line is, so the fees counted are the fees billed.
 */
export function commitmentTerms(plan: { readonly currency: string; readonly flat_fee: string; readonly charges: unknown; readonly settings: unknown }): {
  minimumCommitment?: string;
  feesTowardCommitment?: string;
} {
  const settings = (plan.settings ?? {}) as PlanSettings;
  if (settings.minimumCommitment === undefined) return {};
  if (settings.commitmentIncludesFees !== true) return { minimumCommitment: settings.minimumCommitment };
  const flatCharges = recurringCharges((plan.charges ?? []) as Charge[]).map((charge) => toDecimal((charge.price as { amount: string }).amount));
  const fees = [toDecimal(plan.flat_fee), ...flatCharges].map((fee) => roundMoney(fee, plan.currency));
  return { minimumCommitment: settings.minimumCommitment, feesTowardCommitment: sumMoney(fees).toFixed() };
}

/** What the subscription workflow needs from a plan version to schedule its periods (no prices). */
export interface PlanScheduleTerms {
  readonly planId: string;
  readonly planCode: string;
  readonly billingInterval: string;
  readonly trialPeriod: string | null;
  readonly currency: string;
  readonly hasUsageCharges: boolean;
  readonly usageGracePeriod: string;
  readonly retentionOffer: RetentionOfferTerms | null;
  readonly winBackOffer: WinBackOfferTerms | null;
  readonly creditUnusedOnCancel: boolean;
  readonly usageWhilePaused: 'reject' | 'bill';
  readonly dunning: DunningTerms;
}

export function planScheduleTerms(plan: {
  readonly id: string;
  readonly code: string;
  readonly billing_interval: string;
  readonly trial_period: string | null;
  readonly currency: string;
  readonly charges: unknown;
  readonly settings: unknown;
}): PlanScheduleTerms {
  const settings = (plan.settings ?? {}) as PlanSettings;
  return {
    planId: plan.id,
    planCode: plan.code,
    billingInterval: plan.billing_interval,
    trialPeriod: plan.trial_period,
    hasUsageCharges: usageCharges((plan.charges ?? []) as Charge[]).length > 0,
    currency: plan.currency,
    usageGracePeriod: settings.usageGracePeriod ?? DEFAULT_USAGE_GRACE_PERIOD,
    retentionOffer: settings.retentionOffer ?? null,
    winBackOffer: settings.winBackOffer ?? null,
    creditUnusedOnCancel: settings.creditUnusedOnCancel ?? false,
    usageWhilePaused: settings.usageWhilePaused ?? 'reject',
    dunning: settings.dunning ?? DEFAULT_DUNNING,
  };
}

/**
 * Whether a plan's usage grace window ends before its next period does, for every period a calendar can give it.
 * Each period's invoice (its fee in advance, the previous period's usage in arrears) waits out the window, and the
 * subscription refuses pauses and plan changes (409 period_opening) while it waits: a window as long as a period
 * billed February's fee in April and kept the subscription "being opened" for good (no pause could ever be made).
 * Months vary (28 to 31 days, clamped month ends), so the window's longest span is compared with the interval's
 * shortest, over every day of a four-year cycle as a period boundary.
 */
export function graceWindowFitsInterval(billingInterval: string, usageGracePeriod: string): boolean {
  const interval = parseInterval(billingInterval);
  const grace = parseInterval(usageGracePeriod);
  let shortestPeriod = Infinity;
  let longestGrace = 0;
  for (let day = 0; day < 1_461; day += 1) {
    const boundary = new Date(Date.UTC(2028, 0, 1 + day));
    shortestPeriod = Math.min(shortestPeriod, addIntervals(boundary, interval, 1).getTime() - boundary.getTime());
    longestGrace = Math.max(longestGrace, addIntervals(boundary, grace, 1).getTime() - boundary.getTime());
  }
  return longestGrace < shortestPeriod;
}
