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
import type { CostSegment } from './cost-tables';

export interface CostInput {
  readonly metricCode: string;
  /** The metric's quantity summed over the window's usage closures, as a decimal string. */
  readonly quantity: string;
  /** What one unit costs the seller (billable_metrics.unit_cost); null when nobody set it (costs 0). */
  readonly unitCost: string | null;
  /**
   * The part of `quantity` the metric's cost tables costed (domain/cost-tables.ts), per table in effect and unit
   * cost, as the closures recorded it. The rest of the quantity, and a share no table entry matched (unitCost
   * null), costs `unitCost`: the metric's flat cost stays the fallback.
   */
  readonly segments?: readonly CostSegment[];
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
  /** Present when cost tables costed (part of) the quantity: the shares and their unit costs (fallback shown as null). */
  readonly segments?: readonly CostSegment[];
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
      const exact = exactCostOf(quantity, line.unitCost, line.segments);
      return {
        metricCode: line.metricCode,
        quantity: quantity.toString(),
        unitCost: line.unitCost === null ? null : toDecimal(line.unitCost).toString(),
        cost: formatMoney(exact, input.currency),
        ...(line.segments?.length ? { segments: line.segments } : {}),
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

/**
 * The exact cost of a quantity: the shares the cost tables costed at their unit costs, the rest (and shares no
 * entry matched) at the metric's fallback unit cost (none: 0). Rounded by the caller, once per line.
 */
export function exactCostOf(quantity: Decimal, fallbackUnitCost: string | null, segments: readonly CostSegment[] | undefined): Decimal {
  const fallback = fallbackUnitCost === null ? ZERO : toDecimal(fallbackUnitCost);
  let costed = ZERO;
  let cost = ZERO;
  for (const segment of segments ?? []) {
    const share = parseQuantity(segment.quantity);
    costed = costed.plus(share);
    cost = cost.plus(share.times(segment.unitCost === null ? fallback : toDecimal(segment.unitCost)));
  }
  return cost.plus(Decimal.max(ZERO, quantity.minus(costed)).times(fallback));
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

/** A customer's margin over all their subscriptions in one currency. */
export interface CustomerMargin extends Omit<Margin, 'costLines'> {
  readonly customerId: string;
  readonly customerExternalId: string;
  readonly subscriptionIds: readonly string[];
  /** margin < 0: the customer cost us more than they paid in the window. */
  readonly lossMaking: boolean;
}

/**
 * Per customer and currency, the sums of their subscriptions' revenue and cost (the figures each row shows, so a
 * reader can add them up); ascending by margin, so the customers who lose money come first.
 */
export function customerMargins(
  rows: readonly (Pick<Margin, 'currency' | 'revenue' | 'cost'> & { readonly subscriptionId: string; readonly customerId: string; readonly customerExternalId: string })[],
): CustomerMargin[] {
  const byCustomer = new Map<string, (typeof rows)[number][]>();
  for (const row of rows) {
    const key = `${row.customerId}\u0000${row.currency}`;
    byCustomer.set(key, [...(byCustomer.get(key) ?? []), row]);
  }
  return [...byCustomer.values()]
    .map((own) => {
      const total = totalMargin(own[0].currency, own);
      return {
        ...total,
        customerId: own[0].customerId,
        customerExternalId: own[0].customerExternalId,
        subscriptionIds: own.map((row) => row.subscriptionId).sort(),
        lossMaking: toDecimal(total.margin).isNegative(),
      };
    })
    .sort((a, b) => compareByMargin(a, b) || (a.customerExternalId < b.customerExternalId ? -1 : a.customerExternalId > b.customerExternalId ? 1 : 0));
}
