import { ApplicationFailure } from '@temporalio/activity';
import type { UsagePeriodRequest, UsagePeriodSummary } from '../contract/usage';
import type { Charge } from '../domain/rating';
import { findPlan } from '../store/catalog';
import type { Database } from '../store/database';
import { loadSubscriptionContext, type SubscriptionRow } from '../store/subscriptions';
import { inTransaction } from '../store/transactions';
import { closeUsage, findUsageClosure, UsageClosure } from '../store/usage';

export type { UsagePeriodRequest, UsagePeriodSummary };

function summarize(closure: UsageClosure): UsagePeriodSummary {
  return {
    closeId: String(closure.id),
    eventCount: Number(closure.event_count),
    quantities: Object.fromEntries(Object.entries(closure.totals).map(([code, usage]) => [code, usage.quantity])),
  };
}

/**
 * Whether the subscription's billable usage ends where the stretch does: the end its workflow recorded when it decided
 * it (a cancellation now, a cancellation accepted after an offer or dunning held the period's end, dunning giving up).
 * That close is its last, and also claims what was accepted stamped past the end. Not a pending cancellation's period
 * end read from the row: in the grace window after a boundary the row still shows the closed period, whose close is
 * not the last (a cancellation asked then ends the next period).
 */
function usageEndsAt(subscription: SubscriptionRow, periodEnd: Date): boolean {
  return subscription.usage_ends_at !== null && subscription.usage_ends_at.getTime() === periodEnd.getTime();
}

export function createUsageActivities(db: Database) {
  return {
    /**
     * Closes a subscription's usage period: claims every not-yet-claimed event of the plan's metrics in
     * [start, end) and records the aggregated totals the invoice is built from. Each event is claimed by exactly
     * one closure, so it is billed exactly once; an event arriving after this is unclaimed and listed as late.
     * Idempotent: a second call returns the first closure.
     */
    async closeUsagePeriod(request: UsagePeriodRequest): Promise<UsagePeriodSummary> {
      const periodStart = new Date(request.periodStart);
      const existing = await findUsageClosure(db, request.subscriptionId, periodStart);
      if (existing) return summarize(existing);

      return inTransaction(db, async (trx) => {
        const context = await loadSubscriptionContext(trx, request.subscriptionId);
        if (!context) {
          throw ApplicationFailure.nonRetryable(`subscription ${request.subscriptionId} not found`, 'subscription_not_found');
        }
        const plan = request.planId ? await findPlan(trx, request.planId) : context.plan;
        const closure = await closeUsage(trx, {
          subscriptionId: request.subscriptionId,
          customerId: context.customer.id,
          periodStart,
          periodEnd: new Date(request.periodEnd),
          planId: plan.id,
          charges: plan.charges as Charge[],
          endsUsage: usageEndsAt(context.subscription, new Date(request.periodEnd)),
        });
        return summarize(closure);
      });
    },
  };
}
