/**
 * Prepaid credit on an invoice (issue 12, docs/wallets.md). Pure. The invoice keeps its usage lines (and the
 * plan's credit bucket line) as they are; then one "credits applied" line per grant the wallet drew on; the total
 * is what is left to pay. A fully covered invoice totals 0 and is not charged.
 */
import type { DraftInvoiceLine, PeriodBounds } from './invoice';
import { invoiceTotal } from './invoice';
import { Dec, formatMoney, toDecimal, ZERO } from './money';
import type { CreditCharge } from './wallet';

/**
 * What the wallet may pay on an invoice: each usage line (by metric, for scoped grants) net of the plan's credit
 * bucket and of what threshold invoices already billed of this usage (both cover usage first, in line order), and
 * never more than the invoice's total before credits. Without the threshold part the wallet would pay again for
 * usage the customer already paid on a threshold invoice.
 */
export function walletPayableCharges(lines: readonly DraftInvoiceLine[], currency: string): CreditCharge[] {
  const bucket = lines
    .filter((line) => (line.kind === 'credit' && coversThisUsage(line)) || line.kind === 'threshold_credit')
    .reduce((sum, line) => sum.plus(toDecimal(line.amount).neg()), ZERO);
  let bucketLeft = Dec.max(bucket, ZERO);
  let payable = Dec.max(toDecimal(invoiceTotal(lines, currency)), ZERO);
  const charges: CreditCharge[] = [];
  for (const line of lines) {
    if (line.kind !== 'usage' && line.kind !== 'commitment_true_up') continue;
    let amount = toDecimal(line.amount);
    const fromBucket = Dec.min(bucketLeft, Dec.max(amount, ZERO));
    bucketLeft = bucketLeft.minus(fromBucket);
    amount = Dec.min(amount.minus(fromBucket), payable);
    if (amount.lte(ZERO)) continue;
    payable = payable.minus(amount);
    charges.push({ metricCode: line.metricCode, amount: formatMoney(amount, currency) });
  }
  return charges;
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
