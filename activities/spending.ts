import type { SpendingCheckRequest, SpendingCheckResult } from '../contract/usage';
import { PlanSettings, usageCharges } from '../domain/plan-terms';
import { rateDimensionalUsage } from '../domain/dimensions';
import type { Charge } from '../domain/rating';
import { formatMoney, toDecimal } from '../domain/money';
import { crossedThresholds, reachedHardCap, SpendingLimit } from '../domain/spending';
import type { Database } from '../store/database';
import { enqueueOutboxEvent } from '../store/outbox';
import { recordSpendingAlert, usageInvoicedWithinPeriod } from '../store/spending-alerts';
import { capUsageUntil } from '../store/subscription-billing';
import { loadSubscriptionContext } from '../store/subscriptions';
import { inTransaction } from '../store/transactions';
import { openUsageForCharges } from '../store/usage-preview';

export type { SpendingCheckRequest, SpendingCheckResult };

const DEFAULT_BUDGET_THRESHOLDS = ['50', '80', '100'];

/** The start of the billing period the open stretch starting at `from` lies in: the stretch's own start when unsure. */
function billingPeriodStartOf(subscription: { current_period_start: Date | null; current_period_end: Date | null }, from: Date): Date {
  const start = subscription.current_period_start;
  const end = subscription.current_period_end;
  return start && end && start <= from && from < end ? start : from;
}

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
      const from = new Date(request.from);
      // A customer's budget is per billing period (PUT /v1/subscriptions/:id/budget), while `from` is the open usage
      // stretch, which an immediate plan change restarts mid-period: keyed and measured from the stretch, a budget
      // threshold was raised a second time in the same period after a change, and the later ones against only
      // the usage since the change. So the budget counts from the period's start (the usage the proration invoice
      // already billed, plus the open usage) and its alerts are keyed by the period. The plan's credit bucket is
      // granted afresh to each stretch (rating applies it per stretch), so its alerts stay per stretch.
      const periodStart = billingPeriodStartOf(subscription, from);
      const budgetSpend =
        periodStart < from
          ? formatMoney(toDecimal(spend).plus(toDecimal(await usageInvoicedWithinPeriod(db, subscription.id, periodStart, from))), plan.currency)
          : spend;
      const measured: Array<{ limit: SpendingLimit; spend: string; periodStart: Date }> = [
        ...(settings.creditBucket && settings.creditAlertThresholds
          ? [{ limit: { basis: 'credit_bucket' as const, amount: settings.creditBucket, thresholds: settings.creditAlertThresholds }, spend, periodStart: from }]
          : []),
        ...(row.budget_amount
          ? [{ limit: { basis: 'budget' as const, amount: row.budget_amount, thresholds: row.alert_thresholds ?? DEFAULT_BUDGET_THRESHOLDS }, spend: budgetSpend, periodStart }]
          : []),
      ];
      const raised: string[] = [];
      await inTransaction(db, async (trx) => {
        for (const { limit, spend: spent, periodStart: alertPeriod } of measured) {
          for (const crossed of crossedThresholds(spent, [limit])) {
            const raisedNow = await recordSpendingAlert(trx, {
              subscriptionId: subscription.id,
              periodStart: alertPeriod,
              basis: crossed.basis,
              threshold: crossed.threshold,
              spend: spent,
              limitAmount: crossed.limitAmount,
            });
            if (!raisedNow) continue; // raised earlier this period, against the same limit
            raised.push(`${crossed.basis}:${crossed.threshold}`);
            const key = `spending:${subscription.id}:${alertPeriod.toISOString()}:${crossed.basis}:${crossed.threshold}`;
            await enqueueOutboxEvent(trx, {
              eventType: 'spending.threshold_reached',
              aggregateType: 'subscription',
              aggregateId: subscription.id,
              // Raised again after a limit change: a new event (the alert row, not this key, stops repeats).
              dedupeKey: raisedNow.again ? `${key}:${crossed.limitAmount}:${raisedNow.raisedAt.toISOString()}` : key,
              payload: { subscriptionId: subscription.id, basis: crossed.basis, threshold: crossed.threshold, spend: spent, limit: crossed.limitAmount, currency: plan.currency },
            });
          }
        }
        if (reachedHardCap(spend, settings.hardCap)) {
          await capUsageUntil(trx, subscription.id, new Date(request.periodEnd));
        }
      });
      return { spend, raised, capped: reachedHardCap(spend, settings.hardCap) };
    },
  };
}
