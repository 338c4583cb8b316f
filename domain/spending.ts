/**
 * Spending thresholds: which alerts a period's usage spend has crossed. Pure.
 */
import { canonicalDecimal, Dec, toDecimal } from './money';

export interface SpendingLimit {
  /** What the thresholds are a share of: the plan's included credit, or the customer's own budget. */
  readonly basis: 'credit_bucket' | 'budget';
  readonly amount: string;
  /** Percentages, e.g. ["50", "80", "100"]. */
  readonly thresholds: readonly string[];
}

export interface CrossedThreshold {
  readonly basis: SpendingLimit['basis'];
  readonly threshold: string;
  readonly limitAmount: string;
}

/**
 * Every threshold at or below the spend (a spend of exactly 50 % of the limit crosses "50"), once per number and in
 * its canonical spelling: the alert row is keyed by the threshold's text, so "50" and "50.0" (a budget stored before
 * the API canonicalized them, a plan's settings) were two alerts for one crossing.
 */
export function crossedThresholds(spend: string, limits: readonly SpendingLimit[]): CrossedThreshold[] {
  const spent = toDecimal(spend);
  return limits.flatMap((limit) => {
    const amount = toDecimal(limit.amount);
    if (amount.lte(0)) return [];
    return [...new Set(limit.thresholds.map((threshold) => canonicalDecimal(threshold)))]
      .filter((threshold) => spent.gte(amount.times(toDecimal(threshold)).dividedBy(100)))
      .map((threshold) => ({ basis: limit.basis, threshold, limitAmount: amount.toString() }));
  });
}

export function reachedHardCap(spend: string, hardCap: string | undefined): boolean {
  return hardCap !== undefined && toDecimal(spend).gte(new Dec(hardCap));
}
