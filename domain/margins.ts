/**
 * Unit economics of one subscription over a window: revenue, usage cost and margin. Pure arithmetic; which lines
 * and closures belong to the window is decided by the store (store/margins.ts) and documented in docs/margins.md.
 *
 * Money rules: revenue is a sum of invoice lines that were each rounded once, so it is exact. Cost is priced per
 * metric (the window's quantity × the metric's unit cost) and each metric's cost line is rounded once, half-up, to
 * the currency's minor unit; the cost is the sum of those rounded lines, so the margin a reader recomputes from
 * the figures shown (revenue − cost) is exactly the margin shown.
 */
import Decimal from 'decimal.js';
import { Dec, formatMoney, roundMoney, sumMoney, toDecimal, ZERO } from './money';

export interface CostInput {
  readonly metricCode: string;
  /** The metric's quantity summed over the window's usage closures, as a decimal string. */
  readonly quantity: string;
  /** What one unit costs the seller (billable_metrics.unit_cost); null when nobody set it (costs 0). */
  readonly unitCost: string | null;
}

export interface MarginInput {
  readonly currency: string;
  /** Σ invoice line amounts in the window (credit notes already subtracted), as a decimal string. */
  readonly revenue: string;
  readonly costs: readonly CostInput[];
}

export interface CostLine {
  readonly metricCode: string;
  readonly quantity: string;
  readonly unitCost: string | null;
  /** quantity × unit cost, rounded once to the currency's minor unit. */
  readonly cost: string;
}

export interface Margin {
  readonly currency: string;
  readonly revenue: string;
  readonly cost: string;
  /** revenue − cost. */
  readonly margin: string;
  /**
   * margin / revenue × 100, two decimals (half-up); null when revenue is 0, or negative (credit notes exceeding
   * what was billed), where a ratio would mislead: a loss over a negative revenue reads as +100 %.
   */
  readonly marginPercent: string | null;
  readonly costLines: readonly CostLine[];
}

/** The percentage has two decimals whatever the currency: "-308.16". */
const PERCENT_DECIMALS = 2;

const QUANTITY = /^-?\d+(\.\d+)?$/;

/** Quantities are aggregates of event properties (any scale), so they are not held to money's 12 decimals. */
function parseQuantity(value: string): Decimal {
  if (!QUANTITY.test(value)) throw new TypeError(`not a decimal quantity: ${JSON.stringify(value)}`);
  return new Dec(value);
}

export function subscriptionMargin(input: MarginInput): Margin {
  const revenue = roundMoney(toDecimal(input.revenue), input.currency);
  const costLines = [...input.costs]
    .sort((a, b) => (a.metricCode < b.metricCode ? -1 : a.metricCode > b.metricCode ? 1 : 0))
    .map((line): CostLine => {
      const quantity = parseQuantity(line.quantity);
      const exact = line.unitCost === null ? ZERO : quantity.times(toDecimal(line.unitCost));
      return {
        metricCode: line.metricCode,
        quantity: quantity.toString(),
        unitCost: line.unitCost === null ? null : toDecimal(line.unitCost).toString(),
        cost: formatMoney(exact, input.currency),
      };
    });
  const cost = sumMoney(costLines.map((line) => toDecimal(line.cost)));
  const margin = revenue.minus(cost);
  return {
    currency: input.currency,
    revenue: formatMoney(revenue, input.currency),
    cost: formatMoney(cost, input.currency),
    margin: formatMoney(margin, input.currency),
    marginPercent: marginPercent(margin, revenue),
    costLines,
  };
}

export function marginPercent(margin: Decimal, revenue: Decimal): string | null {
  if (revenue.lessThanOrEqualTo(0)) return null;
  return new Dec(margin).dividedBy(revenue).times(100).toDecimalPlaces(PERCENT_DECIMALS, Decimal.ROUND_HALF_UP).toFixed(PERCENT_DECIMALS);
}

/** Several subscriptions' margins added up (one currency): the sums of what each shows. */
export function totalMargin(currency: string, margins: readonly Pick<Margin, 'revenue' | 'cost'>[]): Omit<Margin, 'costLines'> {
  const revenue = sumMoney(margins.map((margin) => toDecimal(margin.revenue)));
  const cost = sumMoney(margins.map((margin) => toDecimal(margin.cost)));
  const margin = revenue.minus(cost);
  return {
    currency,
    revenue: formatMoney(revenue, currency),
    cost: formatMoney(cost, currency),
    margin: formatMoney(margin, currency),
    marginPercent: marginPercent(margin, revenue),
  };
}

/** Ascending by margin (loss-makers first); ties by the lower margin percentage (no revenue first). */
export function compareByMargin(a: Pick<Margin, 'margin' | 'marginPercent'>, b: Pick<Margin, 'margin' | 'marginPercent'>): number {
  const byMargin = toDecimal(a.margin).comparedTo(toDecimal(b.margin));
  if (byMargin !== 0) return byMargin;
  const pa = a.marginPercent === null ? null : toDecimal(a.marginPercent);
  const pb = b.marginPercent === null ? null : toDecimal(b.marginPercent);
  if (pa && pb) return pa.comparedTo(pb);
  // No revenue at all sorts before a subscription that earns something at the same margin.
  return pa === pb ? 0 : pa === null ? -1 : 1;
}
