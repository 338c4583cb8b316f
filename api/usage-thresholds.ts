/**
 * Progressive billing at the API (docs/pricing.md): plan thresholds checked on publish, and the detection that
 * tells a subscription's workflow when its open usage reached a threshold not invoiced yet.
 *
 * Detection runs after ingestion commits, from the running totals (the usage preview's read, no raw-event scan),
 * for subscriptions whose plan has thresholds. Its signal is a hint: the workflow re-rates in an activity and the
 * invoice's unique key decides, so an early, stale or repeated signal bills nothing twice. The estimate here never
 * misses a crossing: it rates from the later of the period start and the last plan change, which covers at least
 * the stretch the workflow rates.
 */
import type { Client } from '@temporalio/client';
import { usageCharges } from '../domain/plan-terms';
import {
  accruedAmount,
  accruedUsageLines,
  highestThresholdReached,
  UsageThresholds,
  usageThresholdsOf,
  validateUsageThresholds,
} from '../domain/progressive-billing';
import type { Charge } from '../domain/rating';
import type { Database } from '../store/database';
import { loadSubscriptionContext } from '../store/subscriptions';
import { allowanceShareOf, latestStretchStart } from '../store/plan-changes';
import { stretchUsageTerms } from '../domain/allowances';
import { highestInvoicedThreshold, subscriptionsWithThresholds, type ThresholdSubscription } from '../store/threshold-invoices';
import { openUsageForCharges } from '../store/usage-preview';
import { usageThresholdReachedSignal } from '../workflows/definitions';
import { ApiProblem } from './problem';
import { withTemporalDeadline } from './temporal-deadline';

/** The thresholds as stored, once they are positive, increasing amounts of the plan's currency on a metered plan. */
export function checkedUsageThresholds(thresholds: UsageThresholds, currency: string, charges: readonly Charge[]): UsageThresholds {
  const problems = validateUsageThresholds(thresholds, currency).map((message) => ({ path: `usage_thresholds.${message.split(':')[0]}`, message }));
  if (usageCharges(charges).length === 0) problems.push({ path: 'usage_thresholds', message: 'usage_thresholds: the plan has no usage charges to bill early' });
  if (problems.length) throw new ApiProblem('invalid_usage_thresholds', `${problems.length} problem(s) in the plan's usage thresholds`, problems);
  return 'every' in thresholds ? { every: thresholds.every } : { amounts: [...thresholds.amounts] };
}

export class UsageThresholdSignals {
  /** subscription id -> the (stretch, threshold) last signaled, so a burst of ingestion signals each crossing once. */
  private readonly signaled = new Map<string, string>();

  constructor(
    private readonly db: Database,
    private readonly temporal: Client,
  ) {}

  /**
   * Checks the customers' billing subscriptions against their plan's next threshold, usage rated up to `until`;
   * signals each workflow whose usage reached one not invoiced yet. Returns how many signals were sent.
   */
  async check(customerIds: readonly string[], until: Date): Promise<number> {
    if (customerIds.length === 0) return 0;
    let sent = 0;
    let failure: unknown;
    for (const billing of await subscriptionsWithThresholds(this.db, customerIds)) {
      // Each subscription on its own: one whose usage cannot be rated (a seat level below 0 until the missing change
      // arrives) or whose workflow cannot be signaled threw out of the batch, and the customers after it were never
      // signaled; kept due, it failed every later batch the same way. The first failure is still thrown once all
      // are checked, so the caller keeps the batch due (the ones signaled are not signaled twice: `signaled`).
      try {
        if (await this.checkOne(billing, until)) sent += 1;
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
    return sent;
  }

  /** One subscription's check: whether it was signaled. */
  private async checkOne(billing: ThresholdSubscription, until: Date): Promise<boolean> {
    if (!billing.current_period_start) return false; // nothing is open before the first period
    const context = await loadSubscriptionContext(this.db, billing.id);
    const thresholds = context && usageThresholdsOf(context.plan.settings);
    if (!context || !thresholds) return false;
    const from = await latestStretchStart(this.db, billing.id, billing.current_period_start);
    if (until <= from) return false;
    const { plan, customer } = context;
    const charges = usageCharges(plan.charges as Charge[]);
    const usage = await openUsageForCharges(this.db, customer.id, charges, plan.currency, from, until);
    const period = { start: from.toISOString(), end: until.toISOString() };
    const accrued = accruedAmount(
      accruedUsageLines({ planName: plan.name, currency: plan.currency, charges, period, usage, ...stretchUsageTerms(plan, await allowanceShareOf(this.db, billing.id, { start: from, end: null })) }),
      plan.currency,
    );
    const reached = highestThresholdReached(thresholds, accrued);
    if (reached === 0 || reached <= (await highestInvoicedThreshold(this.db, billing.id, from))) return false;
    const key = `${period.start}:${reached}`;
    if (this.signaled.get(billing.id) === key) return false;
    await withTemporalDeadline(this.temporal, () =>
      this.temporal.workflow.getHandle(billing.workflow_id).signal(usageThresholdReachedSignal, { thresholdIndex: reached, accrued }),
    );
    this.signaled.set(billing.id, key);
    return true;
  }
}
