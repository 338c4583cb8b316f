/**
 * Revenue, cost and margin per combination of a dimensional charge (docs/pricing.md). Pure.
 *
 * A combination's revenue is what its own usage lines billed (corrections included); plan-wide lines (fees, the
 * credit bucket, the commitment true-up, credit notes) are not split across combinations. Its cost is its
 * quantity × the metric's unit cost, rounded once per combination. A combination that earns less than it costs
 * is flagged as loss-making.
 */
import { Dec, formatMoney, toDecimal, ZERO } from './money';
import type { CostSegment } from './cost-tables';
import { exactCostOf } from './margins';

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
  /** The part of the quantity the metric's cost tables costed (see domain/margins.ts exactCostOf). */
  readonly segments?: readonly CostSegment[];
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
    const exact = exactCostOf(toDecimal(cost.quantity), cost.unitCost, cost.segments);
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

/** One combination over every subscription of a currency. */
export interface CombinationMarginTotal extends Omit<CombinationMargin, 'quantity'> {
  readonly currency: string;
  readonly quantity: string;
  readonly subscriptions: number;
}

/**
 * Per (currency, metric, combination), the sums of what each subscription's combination shows, loss-makers first:
 * a model whose provider cost rose above its price shows here even when every customer's plan still earns money.
 */
export function combinationTotals(perSubscription: readonly { readonly currency: string; readonly combinations: readonly CombinationMargin[] }[]): CombinationMarginTotal[] {
  const totals = new Map<string, { currency: string; metricCode: string; dimensionKey: string; quantity: Dec; revenue: Dec; cost: Dec; subscriptions: number }>();
  for (const { currency, combinations } of perSubscription) {
    for (const line of combinations) {
      const key = `${currency}\u0000${line.metricCode}\u0000${line.dimensionKey}`;
      const total = totals.get(key) ?? { currency, metricCode: line.metricCode, dimensionKey: line.dimensionKey, quantity: ZERO, revenue: ZERO, cost: ZERO, subscriptions: 0 };
      total.quantity = total.quantity.plus(toDecimal(line.quantity));
      total.revenue = total.revenue.plus(toDecimal(line.revenue));
      total.cost = total.cost.plus(toDecimal(line.cost));
      total.subscriptions += 1;
      totals.set(key, total);
    }
  }
  return [...totals.values()]
    .map((total) => {
      const margin = total.revenue.minus(total.cost);
      return {
        currency: total.currency,
        metricCode: total.metricCode,
        dimensionKey: total.dimensionKey,
        quantity: total.quantity.toString(),
        revenue: formatMoney(total.revenue, total.currency),
        cost: formatMoney(total.cost, total.currency),
        margin: formatMoney(margin, total.currency),
        lossMaking: margin.isNegative(),
        subscriptions: total.subscriptions,
      };
    })
    .sort((a, b) => toDecimal(a.margin).comparedTo(toDecimal(b.margin)) || (`${a.currency}${a.metricCode}${a.dimensionKey}` < `${b.currency}${b.metricCode}${b.dimensionKey}` ? -1 : 1));
}
