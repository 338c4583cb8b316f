import type { SpendingCheckRequest, SpendingCheckResult } from '../contract/usage';
import { PlanSettings, usageCharges } from '../domain/plan-terms';
import { rateDimensionalUsage } from '../domain/dimensions';
import type { Charge } from '../domain/rating';
import { crossedThresholds, reachedHardCap, SpendingLimit } from '../domain/spending';
import type { Database } from '../store/database';
import { enqueueOutboxEvent } from '../store/outbox';
import { recordSpendingAlert } from '../store/spending-alerts';
import { capUsageUntil } from '../store/subscription-billing';
import { loadSubscriptionContext } from '../store/subscriptions';
import { inTransaction } from '../store/transactions';
import { openUsageForCharges } from '../store/usage-preview';

export type { SpendingCheckRequest, SpendingCheckResult };

const DEFAULT_BUDGET_THRESHOLDS = ['50', '80', '100'];

export function createSpendingActivities(db: Database) {
  return {
    /**
     * Rates the usage so far (same function as the invoice) and raises every threshold it crossed, once per
     * threshold per period: the unique (subscription, period, basis, threshold) makes a repeat a no-op. Past the
     * plan's hard cap, ingestion refuses further usage until the period ends.
     */
    async checkSpending(request: SpendingCheckRequest): Promise<SpendingCheckResult> {
      const context = await loadSubscriptionContext(db, request.subscriptionId);
      if (!context) return { spend: '0', raised: [], capped: false };
      const { plan, subscription, customer } = context;
      const settings = plan.settings as PlanSettings;
      const charges = usageCharges(plan.charges as Charge[]);
      // The open stretch to the period's end, not to `at`: a window that ended at "now" was a new set of running
      // totals at every check (seeded by a scan, then folded into by every later insert). Events are never stamped
      // more than a few minutes ahead (timestamp_in_future), and an accepted one counts toward the spend.
      const usage = await openUsageForCharges(db, customer.id, charges, new Date(request.from), new Date(request.periodEnd ?? request.at));
      const spend = rateDimensionalUsage({ currency: plan.currency, charges, usage }).usageTotal;

      const row = subscription as typeof subscription & { budget_amount: string | null; alert_thresholds: string[] | null };
      const limits: SpendingLimit[] = [
        ...(settings.creditBucket && settings.creditAlertThresholds ? [{ basis: 'credit_bucket' as const, amount: settings.creditBucket, thresholds: settings.creditAlertThresholds }] : []),
        ...(row.budget_amount ? [{ basis: 'budget' as const, amount: row.budget_amount, thresholds: row.alert_thresholds ?? DEFAULT_BUDGET_THRESHOLDS }] : []),
      ];
      const raised: string[] = [];
      await inTransaction(db, async (trx) => {
        for (const crossed of crossedThresholds(spend, limits)) {
          const raisedNow = await recordSpendingAlert(trx, {
            subscriptionId: subscription.id,
            periodStart: new Date(request.from),
            basis: crossed.basis,
            threshold: crossed.threshold,
            spend,
            limitAmount: crossed.limitAmount,
          });
          if (!raisedNow) continue; // raised earlier this period
          raised.push(`${crossed.basis}:${crossed.threshold}`);
          await enqueueOutboxEvent(trx, {
            eventType: 'spending.threshold_reached',
            aggregateType: 'subscription',
            aggregateId: subscription.id,
            dedupeKey: `spending:${subscription.id}:${request.from}:${crossed.basis}:${crossed.threshold}`,
            payload: { subscriptionId: subscription.id, basis: crossed.basis, threshold: crossed.threshold, spend, limit: crossed.limitAmount, currency: plan.currency },
          });
        }
        if (reachedHardCap(spend, settings.hardCap)) {
          await capUsageUntil(trx, subscription.id, new Date(request.periodEnd));
        }
      });
      return { spend, raised, capped: reachedHardCap(spend, settings.hardCap) };
    },
  };
}
