import { usageCharges } from '../domain/plan-terms';
import type { Charge, UsageForCharge } from '../domain/rating';
import type { Database } from './database';
import { findMetricsByCode } from './catalog';
import { aggregateMetric } from './usage';

/**
 * The open (not yet closed) usage of a customer in [from, to), per metric of the plan's usage charges:
 * what the real-time usage page and cost preview rate with the same function as the invoice.
 */
export async function openUsageForCharges(
  db: Database,
  customerId: string,
  charges: readonly Charge[],
  from: Date,
  to: Date,
): Promise<(UsageForCharge & { eventCount: number })[]> {
  const metered = usageCharges(charges);
  const metrics = await findMetricsByCode(db, [...new Set(metered.map((charge) => charge.metricCode))]);
  return Promise.all(
    metrics.map(async (metric) => {
      const wantsValues = metered.some((charge) => charge.metricCode === metric.code && charge.price.model === 'percentage');
      const usage = await aggregateMetric(db, metric, { kind: 'unclaimed', customerId, from, to }, wantsValues);
      return { metricCode: metric.code, ...usage };
    }),
  );
}
