/**
 * Whether a plan's charge can be rated from what its metric aggregates. Checked when a plan is published, so a
 * plan that could never be invoiced is refused with a problem instead of failing every period (pure).
 */

export type MetricAggregation = 'count' | 'sum' | 'max' | 'unique_count' | 'latest' | 'prorated_sum' | 'prorated_latest';

/** What a charge needs to know about its metric. */
export interface MetricShape {
  readonly code: string;
  readonly aggregation: MetricAggregation;
  readonly property: string | null;
  readonly allowNegative: boolean;
}

export interface ChargeToFit {
  readonly metricCode: string;
  readonly price: { readonly model: string };
  /** A dimensional charge's prices (each may be cost_plus). */
  readonly dimensions?: { readonly prices: readonly { readonly price: { readonly model: string } }[]; readonly defaultPrice?: { readonly model: string } };
}

/**
 * A cost_plus price bills each unit at the cost of the table in effect at its event's time, so its quantity must be
 * a sum of per-event amounts: a count or a sum. A max, latest or unique_count has no per-event share to cost.
 */
const COSTABLE_AGGREGATIONS: ReadonlySet<MetricAggregation> = new Set(['count', 'sum']);

function usesCostPlus(charge: ChargeToFit): boolean {
  if (charge.price?.model === 'cost_plus') return true;
  const dimensions = charge.dimensions;
  return !!dimensions && (dimensions.prices.some((entry) => entry?.price?.model === 'cost_plus') || dimensions.defaultPrice?.model === 'cost_plus');
}

/**
 * The problems of each charge against its metric, as `{ index, message }`; empty when every charge fits.
 *
 * A percentage charge prices each event's reported value (min/max apply per event), so rating needs one value per
 * counted event: its metric must be a `count` with a property, which ingestion then requires to be a
 * non-negative number on every counted event. Any other aggregation yields a quantity that is not the number
 * of values (a `sum` of 3 events is not 3), which rating refuses at every period close.
 */
export function chargeMetricMismatches(
  charges: readonly ChargeToFit[],
  metricsByCode: ReadonlyMap<string, MetricShape>,
): { index: number; message: string }[] {
  const problems: { index: number; message: string }[] = [];
  /** `plain:<metric>` / `dimensional:<metric>` -> the first usage charge of that identity. */
  const firstOfIdentity = new Map<string, number>();
  charges.forEach((charge, index) => {
    // Re-rating and reversal credits tell a period's usage lines apart by metric (and combination, for a
    // dimensional line: domain/rerating.ts lineKey), so two usage charges of one identity would each be compared
    // with the sum of both billed lines and credit far more than was billed. A flat charge bills no usage line;
    // a plain and a dimensional charge on one metric keep distinct identities.
    if (charge.price?.model !== 'flat') {
      const identity = `${charge.dimensions ? 'dimensional' : 'plain'}:${charge.metricCode}`;
      const first = firstOfIdentity.get(identity);
      if (first !== undefined) {
        problems.push({ index, message: `metric ${charge.metricCode} is already priced by charges.${first}: price a metric once per plan (dimensions price it per combination)` });
        return;
      }
      firstOfIdentity.set(identity, index);
    }
    const metric = metricsByCode.get(charge.metricCode);
    if (metric && usesCostPlus(charge) && (!COSTABLE_AGGREGATIONS.has(metric.aggregation) || metric.allowNegative)) {
      problems.push({
        index,
        message: metric.allowNegative
          ? `a cost_plus price cannot cost negative usage, and metric ${metric.code} allows it`
          : `a cost_plus price needs a count or sum metric (each event's units are costed at its own time); ${metric.code} is a ${metric.aggregation} metric`,
      });
      return;
    }
    if (!metric || charge.price.model !== 'percentage') return;
    if (metric.aggregation !== 'count' || metric.property === null) {
      problems.push({
        index,
        message: `a percentage charge needs a count metric with a per-event numeric property; ${metric.code} is a ${metric.aggregation} metric${metric.property ? '' : ' without a property'}`,
      });
    } else if (metric.allowNegative) {
      problems.push({ index, message: `a percentage charge cannot price negative values, and metric ${metric.code} allows them` });
    }
  });
  return problems;
}
