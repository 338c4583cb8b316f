/**
 * Revenue, cost and margin per combination of a dimensional charge (docs/pricing.md). Pure.
 *
 * A combination's revenue is what its own usage lines billed (corrections included); plan-wide lines (fees, the
 * credit bucket, the commitment true-up, credit notes) are not split across combinations. Its cost is its
 * quantity × the metric's unit cost, rounded once per combination. A combination that earns less than it costs
 * is flagged as loss-making.
 */
import { formatMoney, toDecimal, ZERO } from './money';

export interface CombinationRevenue {
  readonly metricCode: string;
  readonly dimensionKey: string;
  readonly revenue: string;
}

export interface CombinationCost {
  readonly metricCode: string;
  readonly dimensionKey: string;
  readonly quantity: string;
  readonly unitCost: string | null;
}

export interface CombinationMargin {
  readonly metricCode: string;
  readonly dimensionKey: string;
  readonly quantity: string;
  readonly revenue: string;
  readonly cost: string;
  readonly margin: string;
  readonly lossMaking: boolean;
}

export function combinationMargins(currency: string, revenues: readonly CombinationRevenue[], costs: readonly CombinationCost[]): CombinationMargin[] {
  const byKey = new Map<string, { metricCode: string; dimensionKey: string; quantity: string; revenue: string; cost: string }>();
  const keyOf = (entry: { metricCode: string; dimensionKey: string }) => `${entry.metricCode}\u0000${entry.dimensionKey}`;
  const entry = (source: { metricCode: string; dimensionKey: string }) => {
    const key = keyOf(source);
    let current = byKey.get(key);
    if (!current) byKey.set(key, (current = { metricCode: source.metricCode, dimensionKey: source.dimensionKey, quantity: '0', revenue: '0', cost: '0' }));
    return current;
  };
  for (const revenue of revenues) {
    const current = entry(revenue);
    current.revenue = toDecimal(current.revenue).plus(toDecimal(revenue.revenue)).toString();
  }
  for (const cost of costs) {
    const current = entry(cost);
    current.quantity = toDecimal(current.quantity).plus(toDecimal(cost.quantity)).toString();
    const exact = cost.unitCost === null ? ZERO : toDecimal(cost.quantity).times(toDecimal(cost.unitCost));
    current.cost = toDecimal(current.cost).plus(toDecimal(formatMoney(exact, currency))).toString();
  }
  return [...byKey.values()]
    .map((line) => {
      const margin = toDecimal(line.revenue).minus(toDecimal(line.cost));
      return {
        metricCode: line.metricCode,
        dimensionKey: line.dimensionKey,
        quantity: line.quantity,
        revenue: formatMoney(toDecimal(line.revenue), currency),
        cost: formatMoney(toDecimal(line.cost), currency),
        margin: formatMoney(margin, currency),
        lossMaking: margin.isNegative(),
      };
    })
    .sort((a, b) => toDecimal(a.margin).comparedTo(toDecimal(b.margin)) || (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
}
