import type { Charge } from '../domain/rating';
import type { Database } from './database';
import { rollupUsage } from './rollups';
import { aggregateMetricGroups } from './dimension-usage';
import { isProratedAggregation } from './seat-usage';
import { aggregateMetric, ChargeUsage, meteredMetricsOf, usageForCharges, UsageScope } from './usage';

/**
 * The open (not yet closed) usage of a customer in [from, to), per metric of the plan's usage charges:
 * what the real-time usage page and cost preview rate with the same function as the invoice.
 *
 * Read from the running totals (store/rollups.ts), so the cost does not grow with the number of events. Three
 * cases read raw events instead: a percentage charge prices every event's own value, which no total holds; a
 * metric split by `group_by` (its totals are kept for the whole metric, not per combination yet); and a window a
 * closed usage period overlaps (some of its events may be claimed, and claimed ones are not "open").
 */
export async function openUsageForCharges(
  db: Database,
  customerId: string,
  charges: readonly Charge[],
  from: Date,
  to: Date,
): Promise<ChargeUsage[]> {
  const metered = await meteredMetricsOf(db, charges);
  const scope: UsageScope = { kind: 'unclaimed', customerId, from, to };
  const readsRaw = ({ metric, withEventValues }: (typeof metered.metrics)[number]): boolean =>
    withEventValues || (metric.group_by?.length ?? 0) > 0 || isProratedAggregation(metric.aggregation); // seats: store/seat-usage.ts
  const totalled = metered.metrics.filter((entry) => !readsRaw(entry)).map(({ metric }) => metric);
  const totals = await rollupUsage(db, { customerId, from, to }, totalled);
  if (!totals) return usageForCharges(db, metered, scope);
  return Promise.all(
    metered.metrics.map(async (entry) => {
      const { metric, withEventValues } = entry;
      if (!readsRaw(entry)) return { metricCode: metric.code, ...totals.get(metric.code)! };
      return {
        metricCode: metric.code,
        ...(await aggregateMetric(db, metric, scope, withEventValues)),
        ...(metric.group_by?.length ? { groups: await aggregateMetricGroups(db, metric, scope, withEventValues) } : {}),
      };
    }),
  );
}
