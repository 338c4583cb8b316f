import type { Charge } from '../domain/rating';
import type { Database } from './database';
import { rollupUsage } from './rollups';
import { aggregateMetricGroups } from './dimension-usage';
import { usageCharges } from '../domain/plan-terms';
import { cachedMetricsByCode } from './read-caches';
import { aggregateMetric, ChargeUsage, MeteredMetrics, UsageScope } from './usage';

/**
 * The open (not yet closed) usage of a customer in [from, to), per metric of the plan's usage charges:
 * what the real-time usage page and cost preview rate with the same function as the invoice.
 *
 * Read from the running totals (store/rollups.ts), per combination for a metric with `group_by`, so the cost does
 * not grow with the number of events. One case reads raw events: a metric priced by a `percentage` charge, whose
 * rating takes every event's own value (docs/wallets.md "Running totals" says why totals cannot stand in).
 */
export async function openUsageForCharges(
  db: Database,
  customerId: string,
  charges: readonly Charge[],
  from: Date,
  to: Date,
): Promise<ChargeUsage[]> {
  const metered = await meteredMetricsCached(db, charges);
  const scope: UsageScope = { kind: 'unclaimed', customerId, from, to };
  const totalled = metered.metrics.filter((entry) => !entry.withEventValues).map(({ metric }) => metric);
  const totals = await rollupUsage(db, { customerId, from, to }, totalled);
  return Promise.all(
    metered.metrics.map(async ({ metric, withEventValues }) => {
      if (!withEventValues) return { metricCode: metric.code, ...totals.get(metric.code)! };
      return {
        metricCode: metric.code,
        ...(await aggregateMetric(db, metric, scope, withEventValues)),
        ...(metric.group_by?.length ? { groups: await aggregateMetricGroups(db, metric, scope, withEventValues) } : {}),
      };
    }),
  );
}

/** meteredMetricsOf (store/usage.ts) from the metric cache: the preview runs on every request. */
async function meteredMetricsCached(db: Database, charges: readonly Charge[]): Promise<MeteredMetrics> {
  const metered = usageCharges(charges);
  const metrics = await cachedMetricsByCode(db, metered.map((charge) => charge.metricCode));
  return {
    metrics: metrics.map((metric) => ({
      metric,
      withEventValues: metered.some((charge) => charge.metricCode === metric.code && charge.price.model === 'percentage'),
    })),
    eventTypes: [...new Set(metrics.map((metric) => metric.event_type))],
  };
}
