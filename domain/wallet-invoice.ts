/**
 * Prepaid credit on an invoice (issue 12, docs/wallets.md). Pure. The invoice keeps its usage lines (and the
 * plan's credit bucket line) as they are; then one "credits applied" line per grant the wallet drew on; the total
 * is what is left to pay. A fully covered invoice totals 0 and is not charged.
 */
import type { DraftInvoiceLine, PeriodBounds } from './invoice';
import { invoiceTotal } from './invoice';
import { Dec, formatMoney, minorUnitExponent, toDecimal, ZERO } from './money';
import type { CreditCharge } from './wallet';

/**
 * What the wallet may pay on an invoice: each usage line (by metric, for scoped grants) net of the plan's credit
 * bucket and of what threshold invoices already billed of this usage (both cover usage first, in line order), and
 * never more than the invoice's total before credits. Without the threshold part the wallet would pay again for
 * usage the customer already paid on a threshold invoice. A discount line lowers the usage by its share (`kept`, read
 * from the lines unless given: the usage before a grant's expiry has the invoice's discount, not a line of its own).
 */
export function walletPayableCharges(lines: readonly DraftInvoiceLine[], currency: string, kept: Dec = keptAfterDiscounts(lines)): CreditCharge[] {
  const cover = (match: (line: DraftInvoiceLine) => boolean) =>
    Dec.max(
      lines.filter(match).reduce((sum, line) => sum.plus(toDecimal(line.amount).neg()), ZERO),
      ZERO,
    );
  let bucketLeft = cover((line) => line.kind === 'credit' && coversThisUsage(line));
  // Threshold credits come after the discount (they take back what was billed in cash, at full price): they cover
  // the discounted usage. The bucket is one of the lines the discount was computed over: it covers before it.
  let thresholdLeft = cover((line) => line.kind === 'threshold_credit');
  let payable = Dec.max(toDecimal(invoiceTotal(lines, currency)), ZERO);
  const charges: CreditCharge[] = [];
  for (const line of lines) {
    if (line.kind !== 'usage' && line.kind !== 'commitment_true_up') continue;
    let amount = toDecimal(line.amount);
    const fromBucket = Dec.min(bucketLeft, Dec.max(amount, ZERO));
    bucketLeft = bucketLeft.minus(fromBucket);
    amount = amount.minus(fromBucket);
    // A discount line lowers every line it was computed over, the usage too: the wallet pays the usage's discounted
    // amount (rounded down: never more than the usage's share), else it paid part of the discounted fee as well.
    if (kept.lt(1)) amount = amount.times(kept).toDecimalPlaces(minorUnitExponent(currency), Dec.ROUND_DOWN);
    const fromThresholds = Dec.min(thresholdLeft, Dec.max(amount, ZERO));
    thresholdLeft = thresholdLeft.minus(fromThresholds);
    amount = Dec.min(amount.minus(fromThresholds), payable);
    if (amount.lte(ZERO)) continue;
    payable = payable.minus(amount);
    charges.push({ metricCode: line.metricCode, amount: formatMoney(amount, currency) });
  }
  return charges;
}

/** The share of each line the invoice's discount lines leave to pay (1: no discount), from their amount and base. */
export function keptAfterDiscounts(lines: readonly DraftInvoiceLine[]): Dec {
  let kept = new Dec(1);
  for (const line of lines) {
    if (line.kind !== 'discount') continue;
    const base = toDecimal(String((line.breakdown as Record<string, unknown> | null | undefined)?.discountedAmount ?? '0'));
    if (base.lte(ZERO)) continue;
    kept = kept.times(Dec.max(new Dec(1).minus(toDecimal(line.amount).neg().div(base)), ZERO));
  }
  return kept;
}

/**
 * A credit line that covers the invoice's own usage (the plan's bucket). A reversed outcome's lines belong to an
 * earlier period (its bucket correction, and the credit returned to the wallet): counted as cover, they cancelled
 * the bucket, and the wallet paid the flat fee with the credit it had just been given back.
 */
function coversThisUsage(line: DraftInvoiceLine): boolean {
  return !isWalletLine(line) && line.breakdown?.reversal !== true;
}

export interface AppliedGrantCredit {
  readonly grantId: string | null;
  readonly source: string;
  readonly amount: string;
  readonly expiresAt: Date | null;
}

/** One negative "credits applied" line per grant drawn on (the overdraft, when drawn, is a line of its own). */
export function creditsAppliedLines(applied: readonly AppliedGrantCredit[], currency: string, period: PeriodBounds): DraftInvoiceLine[] {
  return applied.map((credit) => ({
    kind: 'credit',
    description:
      credit.grantId === null
        ? 'Credits applied (overdraft)'
        : `Credits applied (${credit.source.replace('_', ' ')} credit${credit.expiresAt ? `, expires ${credit.expiresAt.toISOString().slice(0, 10)}` : ''})`,
    metricCode: null,
    quantity: '1',
    amount: formatMoney(toDecimal(credit.amount).neg(), currency),
    periodStart: period.start,
    periodEnd: period.end,
    breakdown: { walletGrantId: credit.grantId, source: credit.source },
  }));
}

/** A line the wallet put on an invoice (credits applied, or credit given back to it): not part of what usage cost. */
export function isWalletLine(line: { readonly breakdown?: unknown }): boolean {
  const breakdown = line.breakdown as Record<string, unknown> | null | undefined;
  return !!breakdown && typeof breakdown === 'object' && ('walletGrantId' in breakdown || 'walletGiveBack' in breakdown);
}
