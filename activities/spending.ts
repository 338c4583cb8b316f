import type { SpendingCheckRequest, SpendingCheckResult } from '../contract/usage';
import type { Database } from '../store/database';
import { enqueueOutboxEvent } from '../store/outbox';
import { recordSpendingAlert } from '../store/spending-alerts';
import { crossingsOf, measureSpending } from '../store/spending-limits';
import { capUsageUntil } from '../store/subscription-billing';
import { loadSubscriptionContext } from '../store/subscriptions';
import { inTransaction } from '../store/transactions';

export type { SpendingCheckRequest, SpendingCheckResult };

export function createSpendingActivities(db: Database) {
  return {
    /**
     * Rates the usage so far (same function as the invoice) and raises every threshold it crossed, once per
     * threshold per period: the unique (subscription, period, basis, threshold) makes a repeat a no-op. Past the
     * plan's hard cap, ingestion refuses usage stamped in the period, whenever it arrives.
     */
    async checkSpending(request: SpendingCheckRequest): Promise<SpendingCheckResult> {
      const context = await loadSubscriptionContext(db, request.subscriptionId);
      if (!context) return { spend: '0', raised: [], capped: false };
      const { plan, subscription } = context;
      // The open stretch to the period's end, not to `at`: a window that ended at "now" was a new set of running
      // totals at every check (seeded by a scan, then folded into by every later insert). Events are never stamped
      // more than a few minutes ahead (timestamp_in_future), and an accepted one counts toward the spend.
      const measure = await measureSpending(db, context, new Date(request.from), new Date(request.periodEnd ?? request.at));
      const raised: string[] = [];
      await inTransaction(db, async (trx) => {
        for (const crossed of crossingsOf(measure)) {
          const raisedNow = await recordSpendingAlert(trx, {
            subscriptionId: subscription.id,
            periodStart: crossed.periodStart,
            basis: crossed.basis,
            threshold: crossed.threshold,
            spend: crossed.spend,
            limitAmount: crossed.limitAmount,
          });
          if (!raisedNow) continue; // raised earlier this period, against the same limit
          raised.push(`${crossed.basis}:${crossed.threshold}`);
          const key = `spending:${subscription.id}:${crossed.periodStart.toISOString()}:${crossed.basis}:${crossed.threshold}`;
          await enqueueOutboxEvent(trx, {
            eventType: 'spending.threshold_reached',
            aggregateType: 'subscription',
            aggregateId: subscription.id,
            // Raised again after a limit change: a new event (the alert row, not this key, stops repeats).
            dedupeKey: raisedNow.again ? `${key}:${crossed.limitAmount}:${raisedNow.raisedAt.toISOString()}` : key,
            payload: { subscriptionId: subscription.id, basis: crossed.basis, threshold: crossed.threshold, spend: crossed.spend, limit: crossed.limitAmount, currency: plan.currency },
          });
        }
        if (measure.capReached) await capUsageUntil(trx, subscription.id, { from: measure.periodStart, until: new Date(request.periodEnd) });
      });
      return { spend: measure.spend, raised, capped: measure.capReached };
    },
  };
}
