import { ApplicationFailure } from '@temporalio/activity';
import { usageCharges } from '../domain/plan-terms';
import type { UsagePeriodRequest, UsagePeriodSummary } from '../contract/usage';
import type { Charge } from '../domain/rating';
import type { Database } from '../store/database';
import { findMetricsByCode } from '../store/catalog';
import { aggregateMetric, findUsageClosure, UsageClosure, UsageTotals } from '../store/usage';
import { findPlan } from '../store/catalog';
import { loadSubscriptionContext } from '../store/subscriptions';

export type { UsagePeriodRequest, UsagePeriodSummary };

function summarize(closure: UsageClosure): UsagePeriodSummary {
  return {
    closeId: String(closure.id),
    eventCount: Number(closure.event_count),
    quantities: Object.fromEntries(Object.entries(closure.totals).map(([code, usage]) => [code, usage.quantity])),
  };
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

      return db.transaction(async (trx) => {
        const context = await loadSubscriptionContext(trx, request.subscriptionId);
        if (!context) {
          throw ApplicationFailure.nonRetryable(`subscription ${request.subscriptionId} not found`, 'subscription_not_found');
        }
        const plan = request.planId ? await findPlan(trx, request.planId) : context.plan;
        const charges = usageCharges(plan.charges as Charge[]);
        const metrics = await findMetricsByCode(trx, [...new Set(charges.map((charge) => charge.metricCode))]);
        const [closure] = await trx<UsageClosure>('usage_period_closures')
          .insert({
            subscription_id: request.subscriptionId,
            customer_id: context.customer.id,
            period_start: periodStart,
            period_end: new Date(request.periodEnd),
            totals: {} as UsageTotals,
            event_count: '0',
            plan_id: plan.id,
          })
          .onConflict(['subscription_id', 'period_start'])
          .ignore()
          .returning('*');
        if (!closure) return summarize((await findUsageClosure(trx, request.subscriptionId, periodStart))!);

        const eventTypes = [...new Set(metrics.map((metric) => metric.event_type))];
        const claimed = eventTypes.length
          ? await trx('usage_events')
              .where({ customer_id: context.customer.id })
              .whereNull('period_close_id')
              .whereIn('event_type', eventTypes)
              .andWhere('occurred_at', '>=', periodStart)
              .andWhere('occurred_at', '<', new Date(request.periodEnd))
              .update({ period_close_id: closure.id })
          : 0;

        const totals: UsageTotals = {};
        for (const metric of metrics) {
          const wantsEventValues = charges.some((charge) => charge.metricCode === metric.code && charge.price.model === 'percentage');
          totals[metric.code] = await aggregateMetric(trx, metric, { kind: 'claimed', closeId: String(closure.id) }, wantsEventValues);
        }
        const [closed] = await trx<UsageClosure>('usage_period_closures')
          .where({ id: closure.id })
          .update({ totals: JSON.stringify(totals) as unknown as UsageTotals, event_count: String(claimed) })
          .returning('*');
        return summarize(closed);
      });
    },
  };
}
