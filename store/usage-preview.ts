import type { Charge } from '../domain/rating';
import type { Database } from './database';
import { rollupUsage } from './rollups';
import { aggregateMetric, ChargeUsage, meteredMetricsOf, usageForCharges, UsageScope } from './usage';

/**
 * The open (not yet closed) usage of a customer in [from, to), per metric of the plan's usage charges:
 * what the real-time usage page and cost preview rate with the same function as the invoice.
 *
 * Read from the running totals (store/rollups.ts), so the cost does not grow with the number of events. Two
 * cases read raw events instead: a percentage charge prices every event's own value, which no total holds, and
 * a window a closed usage period overlaps (some of its events may be claimed, and claimed ones are not "open").
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
  const totalled = metered.metrics.filter(({ withEventValues }) => !withEventValues).map(({ metric }) => metric);
  const totals = await rollupUsage(db, { customerId, from, to }, totalled);
  if (!totals) return usageForCharges(db, metered, scope);
  return Promise.all(
    metered.metrics.map(async ({ metric, withEventValues }) => ({
      metricCode: metric.code,
      ...(withEventValues ? await aggregateMetric(db, metric, scope, true) : totals.get(metric.code)!),
    })),
  );
}
