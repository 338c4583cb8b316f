import type { Charge } from '../domain/rating';
import type { MetricRow } from './catalog';
import type { Database } from './database';
import { rollupUsage } from './rollups';
import { pricesCostPlus } from './cost-tables';
import { aggregateMetricGroups } from './dimension-usage';
import { isProratedAggregation } from './seat-usage';
import { usageCharges } from '../domain/plan-terms';
import { percentageRatesFromTotal } from '../domain/price-calculators';
import { cachedMetricsByCode } from './read-caches';
import { aggregateMetric, ChargeUsage, MeteredMetrics, usageForCharges, UsageScope } from './usage';

/**
 * While paused no period ends: the resume moves the period's end later by the paused time, and the period's invoice
 * bills the usage sent meanwhile (a plan that bills usage while paused), also past the end the row still shows. The
 * open usage of a paused subscription so runs on past that end: counted only to it, the projection said 100.00 where
 * the invoice billed 200.00 for the same usage.
 */
export const OPEN_WHILE_PAUSED = new Date('9999-01-01T00:00:00Z');

/** Whether the shown period's open usage runs on past its end until its invoice (see OPEN_WHILE_PAUSED). */
export function billedPastShownEnd(status: string): { pausedPastEnd: boolean } {
  return { pausedPastEnd: status === 'paused' };
}

/**
 * The open (not yet closed) usage of a customer in [from, to), per metric of the plan's usage charges:
 * what the real-time usage page and cost preview rate with the same function as the invoice.
 *
 * Read from the running totals (store/rollups.ts), per combination for a metric with `group_by`, so the cost does
 * not grow with the number of events. A `percentage` charge without per-event bounds rates the values' sum
 * (valueTotal). Raw events are read for a metric a percentage charge with a minFee, maxFee or free allowance
 * prices (or one priced by combination), whose rating takes every event's own value, and for a plan with a
 * cost_plus charge (each event costed at its own time) (docs/wallets.md "Running totals" says why).
 */
export async function openUsageForCharges(
  db: Database,
  customerId: string,
  charges: readonly Charge[],
  /** The plan's currency: only cost tables in it cost the usage (cost_plus prices). */
  currency: string,
  from: Date,
  to: Date,
  /** Paused (billedPastShownEnd): the usage runs on past `to`, the shown period's end. */
  options: { readonly pausedPastEnd?: boolean } = {},
): Promise<ChargeUsage[]> {
  const metered = await meteredMetricsCached(db, charges);
  const scope: UsageScope = { kind: 'unclaimed', customerId, from, to };
  if (options.pausedPastEnd) {
    // Read from the events: running totals are kept per window, and ingestion would keep one without an end up to
    // date for good. A seat metric stays prorated over the shown period (its length is what its levels are weighed
    // by; an open end would weigh them by nothing).
    const prorated = metered.metrics.filter(({ metric }) => isProratedAggregation(metric.aggregation)).map(({ metric }) => metric.code);
    // One after the other: `db` may be a transaction (the balance watch reads the available balance in one).
    const open = await usageForCharges(db, { ...metered, metrics: metered.metrics.filter(({ metric }) => !prorated.includes(metric.code)) }, { ...scope, to: OPEN_WHILE_PAUSED }, currency);
    const seats = prorated.length ? await openUsageForCharges(db, customerId, charges.filter((charge) => prorated.includes(charge.metricCode)), currency, from, to) : [];
    return [...open, ...seats];
  }
  // A cost_plus price costs each event at its own time (store/cost-tables.ts): no running total holds that split.
  if (charges.some(pricesCostPlus)) return usageForCharges(db, metered, scope, currency);
  const readsRaw = ({ metric, withEventValues }: (typeof metered.metrics)[number]): boolean =>
    (withEventValues && !sumsSuffice(metric, charges)) || isProratedAggregation(metric.aggregation); // seats: store/seat-usage.ts
  const totals = await rollupUsage(db, { customerId, from, to }, metered.metrics.filter((entry) => !readsRaw(entry)).map(({ metric }) => metric));
  return Promise.all(
    metered.metrics.map(async (entry) => {
      const { metric, withEventValues } = entry;
      if (!readsRaw(entry)) {
        const { valueSum, ...usage } = totals.get(metric.code)!;
        return { metricCode: metric.code, ...usage, ...(withEventValues ? { valueTotal: valueSum } : {}) };
      }
      return {
        metricCode: metric.code,
        ...(await aggregateMetric(db, metric, scope, withEventValues)),
        ...(metric.group_by?.length ? { groups: await aggregateMetricGroups(db, metric, scope, withEventValues) } : {}),
      };
    }),
  );
}

/**
 * Whether the metric's percentage charges rate from the values' sum: none has a per-event minFee or maxFee (those
 * clamp each event's fee, so every value matters) or a free allowance (it follows the events' order), and none
 * prices by combination (rated per group's values).
 */
function sumsSuffice(metric: MetricRow, charges: readonly Charge[]): boolean {
  if ((metric.group_by?.length ?? 0) > 0) return false;
  return charges
    .filter((charge) => charge.metricCode === metric.code)
    .every((charge) => !('dimensions' in charge && charge.dimensions) && (charge.price.model !== 'percentage' || percentageRatesFromTotal(charge.price)));
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
