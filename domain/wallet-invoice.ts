/**
 * Prepaid credit on an invoice (issue 12, docs/wallets.md). Pure. The invoice keeps its usage lines (and the
 * plan's credit bucket line) as they are; then one "credits applied" line per grant the wallet drew on; the total
 * is what is left to pay. A fully covered invoice totals 0 and is not charged.
 */
import type { DraftInvoiceLine, PeriodBounds } from './invoice';
import { invoiceTotal } from './invoice';
import { Dec, formatMoney, minorUnitExponent, toDecimal, ZERO } from './money';
import { lineKey } from './rerating';
import type { CreditCharge, LoweredLine } from './wallet';

/**
 * What the wallet may pay on an invoice: each usage line (by metric, for scoped grants) net of the plan's credit
 * bucket and of what threshold invoices already billed of this usage, and never more than the invoice's total before
 * credits. Without the threshold part the wallet would pay again for usage the customer already paid on a threshold
 * invoice. The bucket covers usage in line order. Threshold credits cover first the lines the threshold invoices
 * billed, as they billed them (`thresholdBilled`, thresholdBilledByLine), then any rest in line order: taken in line
 * order alone, a grant scoped to calls paid the calls a threshold invoice had charged to the card, in place of the
 * tokens billed after it. A discount line lowers the usage by its share (`kept`, read from the lines unless given: the
 * usage before a grant's expiry has the invoice's discount, not a line of its own).
 */
export function walletPayableCharges(
  lines: readonly DraftInvoiceLine[],
  currency: string,
  kept: Dec = keptAfterDiscounts(lines),
  thresholdBilled: ThresholdBilledByLine = {},
): CreditCharge[] {
  return walletPayableLineCharges(lines, currency, kept, thresholdBilled).map(({ metricCode, amount }) => ({ metricCode, amount }));
}

/** walletPayableCharges, each charge naming the invoice line it pays (`lineKey`), for the draw's per-line record. */
export function walletPayableLineCharges(
  lines: readonly DraftInvoiceLine[],
  currency: string,
  kept: Dec = keptAfterDiscounts(lines),
  thresholdBilled: ThresholdBilledByLine = {},
): CreditCharge[] {
  const cover = (match: (line: DraftInvoiceLine) => boolean) =>
    Dec.max(
      lines.filter(match).reduce((sum, line) => sum.plus(toDecimal(line.amount).neg()), ZERO),
      ZERO,
    );
  // Threshold credits come after the discount (they take back what was billed in cash, at full price): they cover
  // the discounted usage. The bucket is one of the lines the discount was computed over: it covers before it.
  let thresholdLeft = cover((line) => line.kind === 'threshold_credit');
  const usage = usageAfterBucket(lines).map(({ line, amount }) => ({
    line,
    // A discount line lowers every line it was computed over, the usage too: the wallet pays the usage's discounted
    // amount (rounded down: never more than the usage's share), else it paid part of the discounted fee as well.
    amount: kept.lt(1) ? amount.times(kept).toDecimalPlaces(minorUnitExponent(currency), Dec.ROUND_DOWN) : amount,
  }));
  // First what each threshold invoice billed of the line itself, then the rest of the credits in line order.
  const billedLeft = new Map(Object.entries(thresholdBilled).map(([key, amount]) => [key, toDecimal(amount)]));
  for (const entry of usage) {
    const key = usageLineKey(entry.line);
    const fromOwn = Dec.min(billedLeft.get(key) ?? ZERO, thresholdLeft, Dec.max(entry.amount, ZERO));
    if (fromOwn.lte(ZERO)) continue;
    billedLeft.set(key, billedLeft.get(key)!.minus(fromOwn));
    thresholdLeft = thresholdLeft.minus(fromOwn);
    entry.amount = entry.amount.minus(fromOwn);
  }
  let payable = Dec.max(toDecimal(invoiceTotal(lines, currency)), ZERO);
  const charges: CreditCharge[] = [];
  for (const entry of usage) {
    const fromThresholds = Dec.min(thresholdLeft, Dec.max(entry.amount, ZERO));
    thresholdLeft = thresholdLeft.minus(fromThresholds);
    const amount = Dec.min(entry.amount.minus(fromThresholds), payable);
    if (amount.lte(ZERO)) continue;
    payable = payable.minus(amount);
    charges.push({ metricCode: entry.line.metricCode, amount: formatMoney(amount, currency), lineKey: lineKey(entry.line) });
  }
  return charges;
}

/** Each usage (or true-up) line with its amount net of the plan's credit bucket, which covers them in line order. */
function usageAfterBucket(lines: readonly DraftInvoiceLine[]): { line: DraftInvoiceLine; amount: Dec }[] {
  let bucketLeft = Dec.max(
    lines.filter((line) => line.kind === 'credit' && coversThisUsage(line)).reduce((sum, line) => sum.plus(toDecimal(line.amount).neg()), ZERO),
    ZERO,
  );
  return lines
    .filter((line) => line.kind === 'usage' || line.kind === 'commitment_true_up')
    .map((line) => {
      const amount = toDecimal(line.amount);
      const fromBucket = Dec.min(bucketLeft, Dec.max(amount, ZERO));
      bucketLeft = bucketLeft.minus(fromBucket);
      return { line, amount: amount.minus(fromBucket) };
    });
}

/** What a stretch's threshold invoices billed of each of its usage lines (usageLineKey -> amount), as decimal strings. */
export type ThresholdBilledByLine = Readonly<Record<string, string>>;

/**
 * The lines a credit lowers (a re-rating's difference, a reversed outcome's credit), by how much (a positive amount
 * each), in their order: what goes back to the wallet is given back line by line (domain/wallet.ts lineGiveBacks).
 */
export function loweredLines(lines: readonly DraftInvoiceLine[]): LoweredLine[] {
  return lines
    .filter((line) => toDecimal(line.amount).isNegative())
    .map((line) => ({ lineKey: lineKey(line), metricCode: line.metricCode, amount: toDecimal(line.amount).abs().toString() }));
}

/** A carried-out re-rating of the invoice, as the wallet reads it: its lines and what it gave back to the draw per line. */
export interface CarriedOutCorrection {
  readonly outcome: 'adjustment' | 'credit' | 'none';
  readonly lines: readonly DraftInvoiceLine[];
  readonly walletGiven: readonly { readonly lineKey: string; readonly amount: string }[];
}

/**
 * A re-rating's lowered lines less what earlier carried-out corrections (in the order they were carried out) still
 * hold of each line in cash: an adjustment the card paid raised the line above what the wallet paid, and lowering it
 * gives that cash back first. Without this, undoing a +12.40 adjustment gave the grant back all it had paid of the
 * line and refunded the rest: the card's money turned into (promotional) credit. An adjustment's line adds what it
 * billed (a lowered one takes it off); a credit's lowered line takes off what it credited less what of it went back
 * to the wallet (its raised lines were netted inside the credit, not paid in cash); never below zero.
 */
export function loweredBeyondCorrectionCash(lowered: readonly LoweredLine[], corrections: readonly CarriedOutCorrection[]): LoweredLine[] {
  const cash = new Map<string, Dec>();
  for (const correction of corrections) {
    const change = new Map<string, Dec>();
    const add = (key: string, amount: Dec) => change.set(key, (change.get(key) ?? ZERO).plus(amount));
    for (const line of correction.lines) if (correction.outcome === 'adjustment' || toDecimal(line.amount).isNegative()) add(lineKey(line), toDecimal(line.amount));
    for (const given of correction.walletGiven) add(given.lineKey, toDecimal(given.amount));
    for (const [key, amount] of change) cash.set(key, Dec.max((cash.get(key) ?? ZERO).plus(amount), ZERO));
  }
  return lowered.map((line) => ({ ...line, amount: Dec.max(toDecimal(line.amount).minus(cash.get(line.lineKey) ?? ZERO), ZERO).toString() }));
}

/** A usage line's identity within its stretch: its metric and, for a dimensional charge, its combination. */
export function usageLineKey(line: { readonly metricCode: string | null; readonly breakdown?: unknown }): string {
  const key = (line.breakdown as { dimensionKey?: unknown } | null | undefined)?.dimensionKey;
  return `${line.metricCode ?? ''}|${typeof key === 'string' ? key : ''}`;
}

/**
 * What the threshold invoices of a stretch billed of each usage line, from the latest one's lines: each threshold
 * invoice bills all the usage accrued so far (net of the bucket) less the earlier ones' totals, so together they
 * billed exactly its usage lines net of its bucket, which covers them in line order as on every invoice.
 */
export function thresholdBilledByLine(latestThresholdInvoiceLines: readonly DraftInvoiceLine[], currency: string): ThresholdBilledByLine {
  const billed: Record<string, string> = {};
  for (const { line, amount } of usageAfterBucket(latestThresholdInvoiceLines)) {
    if (line.kind !== 'usage' || amount.lte(ZERO)) continue;
    const key = usageLineKey(line);
    billed[key] = formatMoney(toDecimal(billed[key] ?? '0').plus(amount), currency);
  }
  return billed;
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
