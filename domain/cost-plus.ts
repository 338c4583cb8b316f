/**
 * The arithmetic of the `cost_plus` price model (docs/pricing.md): each share of the usage is billed at the unit
 * cost of the cost table in effect at its events' time, times (1 + markup). Exact; rating.ts rounds the line once.
 * Usage no cost table costs (before the first table, or no entry matching its combination) is billed at 0 and
 * shown as `uncostedQuantity`, so the gap is visible on the invoice rather than hidden.
 */
import { Dec, Exact, ZERO, toDecimal } from './money';
import type { CostSegment } from './cost-tables';
import type { CostPlusPrice } from './price-models';

export interface CostPlusDetail {
  readonly model: 'cost_plus';
  readonly markup: string;
  /** Per table in effect: quantity × unitCost = cost (exact). */
  readonly segments: readonly (CostSegment & { readonly cost: string | null })[];
  /** Σ segment costs, exact. */
  readonly cost: string;
  /** Units no cost table priced (billed 0). */
  readonly uncostedQuantity: string;
}

export class CostPlusError extends Error {
  override name = 'CostPlusError';
}

/** cost × (1 + markup). `quantity` must equal the segments' total: a mismatch means the store lost events. */
export function priceCostPlus(price: CostPlusPrice, quantity: Dec, segments: readonly CostSegment[] | undefined): { amount: Dec; detail: CostPlusDetail } {
  const markup = toDecimal(price.markup);
  // A metric without any cost table yet: nothing costs its usage (shown as uncosted, billed 0).
  const given = segments ?? (quantity.isZero() ? [] : [{ effectiveFrom: null, quantity: quantity.toFixed(), unitCost: null }]);
  const counted = given.reduce<Dec>((total, segment) => total.plus(toDecimal(segment.quantity)), ZERO);
  if (!counted.eq(quantity)) {
    throw new CostPlusError(`cost_plus needs the usage split by cost table: quantity ${quantity.toFixed()} but segments hold ${counted.toFixed()}`);
  }
  // Exact (money.ts): quantity × unit cost × (1 + markup) has 36 decimals; rounded to 40 digits first, 186857.334999...9
  // (42 digits) became 186857.335 and the line billed 186857.34 instead of 186857.33.
  let cost: Dec = new Exact(0);
  let uncosted = ZERO;
  const shown = given.map((segment) => {
    if (segment.unitCost === null) {
      uncosted = uncosted.plus(toDecimal(segment.quantity));
      return { ...segment, cost: null };
    }
    const segmentCost = new Exact(toDecimal(segment.quantity)).times(toDecimal(segment.unitCost));
    cost = cost.plus(segmentCost);
    return { ...segment, cost: segmentCost.toFixed() };
  });
  return {
    amount: cost.times(new Exact(1).plus(markup)),
    detail: { model: 'cost_plus', markup: markup.toFixed(), segments: shown, cost: cost.toFixed(), uncostedQuantity: uncosted.toFixed() },
  };
}
