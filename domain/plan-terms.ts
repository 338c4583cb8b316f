/**
 * The usage terms of a plan version as stored in `plans.charges` and `plans.settings`, read in one place.
 */
import type { Charge } from './rating';

export interface PlanSettings {
  /** Prepaid usage included per period, in money (the hybrid model). */
  readonly creditBucket?: string;
  /** Minimum usage spend per period; a true-up line makes up a shortfall. */
  readonly minimumCommitment?: string;
  /** How long after a period ends late events are still counted in it (ISO-8601). Default PT1H. */
  readonly usageGracePeriod?: string;
}

export const DEFAULT_USAGE_GRACE_PERIOD = 'PT1H';

export function usageCharges(charges: readonly Charge[]): Charge[] {
  return charges.filter((charge) => charge.price.model !== 'flat');
}

export function recurringCharges(charges: readonly Charge[]): Charge[] {
  return charges.filter((charge) => charge.price.model === 'flat');
}

/** What the subscription workflow needs from a plan version to schedule its periods (no prices). */
export interface PlanScheduleTerms {
  readonly planId: string;
  readonly planCode: string;
  readonly billingInterval: string;
  readonly trialPeriod: string | null;
  readonly hasUsageCharges: boolean;
  readonly usageGracePeriod: string;
}

export function planScheduleTerms(plan: {
  readonly id: string;
  readonly code: string;
  readonly billing_interval: string;
  readonly trial_period: string | null;
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
    usageGracePeriod: settings.usageGracePeriod ?? DEFAULT_USAGE_GRACE_PERIOD,
  };
}
