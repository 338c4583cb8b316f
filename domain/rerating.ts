/**
 * Re-rating as a difference: what a period's usage should have cost (recomputed with the same rating function)
 * minus what was already invoiced for it (the original invoice plus earlier corrections). Pure.
 *
 * Like an invoice generator that is a function of (usage, prices, already invoiced): running it again after a
 * correction was carried out yields nothing to do.
 */
import type { DraftInvoiceLine, PeriodBounds } from './invoice';
import { Dec, formatMoney, sumMoney, toDecimal } from './money';
import { dimensionKeyOfBreakdown } from './dimensions';
import type { RatedLine } from './rating';

/**
 * A re-rating's statuses: the row's, the workflow's and the API's. `failed`: its workflow ended on a deterministic
 * failure before the correction was carried out (code on the row).
 */
export const RERATE_STATUSES = ['computing', 'proposed', 'nothing_to_do', 'approved', 'rejected', 'finalized', 'expired', 'failed'] as const;
export type RerateStatus = (typeof RERATE_STATUSES)[number];

/**
 * What became of one credit note a re-rating issued (its cash part, against the re-rated invoice or the period's
 * threshold invoices and adjustments). Read beside the re-rating's status, which stays `finalized` once it is carried
 * out whatever its refunds do. `refunded`: to the payment it came from; `credited_to_wallet`: the gateway refused the
 * refund, so its amount became wallet credit (store/credit-notes.ts settleRefund); `pending`: the refund waits for
 * the gateway; `taken_off_invoice`: a note against an invoice unpaid when it was issued, which its charge collects
 * that much less of (no refund); `owed`: a note against an invoice now paid that neither its charge took off nor a
 * refund gives back (the janitor reports it as `unrefunded_credit`).
 */
export const RERATE_REFUND_OUTCOMES = ['refunded', 'credited_to_wallet', 'pending', 'taken_off_invoice', 'owed'] as const;
export type RerateRefundOutcome = (typeof RERATE_REFUND_OUTCOMES)[number];

/** A note's outcome from its status, its refund's (none: taken off its invoice's charge) and its invoice's. */
export function rerateRefundOutcome(note: { noteStatus: string; refundStatus: 'pending' | 'succeeded' | 'failed' | null; invoiceStatus: string }): RerateRefundOutcome {
  if (note.refundStatus === 'succeeded') return 'refunded';
  if (note.refundStatus === 'failed') return 'credited_to_wallet';
  if (note.refundStatus === 'pending') return 'pending';
  // No refund: settled by the charge (paid), or still taken off what the invoice owes; open on a paid invoice, the
  // charge took none of it off and its payment had nothing left to refund it from.
  return note.noteStatus === 'open' && note.invoiceStatus === 'paid' ? 'owed' : 'taken_off_invoice';
}

/**
 * The invoices that bill a usage period as a whole, the only ones a re-rating corrects. A threshold invoice or an
 * earlier re-rating's adjustment billed only part of it: re-rated, the rest of the period (which the period invoice
 * billed) came out as owed again. A credit note bills nothing.
 */
export const RERATEABLE_INVOICE_KINDS: ReadonlySet<string> = new Set(['period', 'closing', 'proration']);

/** A line's identity across re-ratings: its kind and, for usage, its metric (and combination, when it has one). */
export function lineKey(line: { kind: string; metricCode?: string | null; breakdown?: unknown }): string {
  if (line.kind !== 'usage') return line.kind;
  const combination = dimensionKeyOfBreakdown(line.breakdown);
  return combination === undefined ? `usage:${line.metricCode}` : `usage:${line.metricCode}:${combination}`;
}

export interface InvoicedAmount {
  readonly key: string;
  readonly description: string;
  readonly amount: string;
  /** The billed line's breakdown, kept so a reversed combination line names its combination. */
  readonly breakdown?: unknown;
}

/** A correction line for a combination carries the combination in its breakdown, like the line it corrects. */
function withCombination(line: DraftInvoiceLine, breakdown: unknown): DraftInvoiceLine {
  const combination = dimensionKeyOfBreakdown(breakdown);
  if (combination === undefined) return line;
  const { dimensions } = breakdown as { dimensions?: unknown };
  return { ...line, breakdown: { ...line.breakdown, dimensionKey: combination, ...(dimensions ? { dimensions } : {}) } };
}

export interface RerateDifference {
  readonly lines: DraftInvoiceLine[];
  /** Sum of the difference lines: > 0 the customer owes more, < 0 they are owed, 0 nothing to do. */
  readonly total: string;
  readonly outcome: 'adjustment' | 'credit' | 'none';
}

/** Difference lines, one per line identity whose amount changed, in the recomputed invoice's order. */
export function rerateDifference(
  recomputed: readonly RatedLine[],
  alreadyInvoiced: readonly InvoicedAmount[],
  currency: string,
  period: PeriodBounds,
): RerateDifference {
  const invoiced = new Map<string, { description: string; amount: Dec; breakdown?: unknown }>();
  for (const item of alreadyInvoiced) {
    const current = invoiced.get(item.key);
    invoiced.set(item.key, { description: item.description, amount: (current?.amount ?? new Dec(0)).plus(toDecimal(item.amount)), breakdown: item.breakdown ?? current?.breakdown });
  }
  const lines: DraftInvoiceLine[] = [];
  const seen = new Set<string>();
  for (const line of recomputedByKey(recomputed)) {
    const key = lineKey(line);
    seen.add(key);
    const before = invoiced.get(key)?.amount ?? new Dec(0);
    const difference = toDecimal(line.amount).minus(before);
    if (!difference.isZero()) {
      lines.push(withCombination(differenceLine(line.kind, line.kind === 'usage' ? line.metricCode : null, line.description, line.quantity, difference, before, toDecimal(line.amount), currency, period), line.breakdown));
    }
  }
  // Lines billed before that the recomputation no longer has (e.g. a true-up that is no longer due) are reversed.
  for (const [key, { description, amount, breakdown }] of invoiced) {
    if (seen.has(key) || amount.isZero()) continue;
    const [kind, metricCode] = key.split(':');
    lines.push(withCombination(differenceLine(kind, metricCode ?? null, description, '0', amount.negated(), amount, new Dec(0), currency, period), breakdown));
  }
  const total = sumMoney(lines.map((line) => toDecimal(line.amount)));
  return { lines, total: formatMoney(total, currency), outcome: total.isZero() ? 'none' : total.isPositive() ? 'adjustment' : 'credit' };
}

/**
 * One recomputed line per identity, its amount the sum of the lines that share it (the first one's description,
 * quantity and breakdown), as what was billed is summed per identity. A plan version stored before a metric could be
 * priced only once has two usage lines of one metric: compared one by one with both billed lines, each came out as
 * owing back the other's amount, and re-rating it unchanged proposed a credit of its whole usage (15.00 for
 * 10.00 + 5.00 billed); a wallet-paid one then gave back both lines of one key to one grant, and the second row of the
 * draw's give-back broke its unique key (wallet_draw_lines_once), so carrying it out failed on every retry.
 */
function recomputedByKey(recomputed: readonly RatedLine[]): RatedLine[] {
  const byKey = new Map<string, RatedLine>();
  for (const line of recomputed) {
    const key = lineKey(line);
    const first = byKey.get(key);
    byKey.set(key, first ? { ...first, amount: toDecimal(first.amount).plus(toDecimal(line.amount)).toFixed() } : line);
  }
  return [...byKey.values()];
}

function differenceLine(
  kind: string,
  metricCode: string | null,
  description: string,
  quantity: string,
  difference: Dec,
  before: Dec,
  after: Dec,
  currency: string,
  period: PeriodBounds,
): DraftInvoiceLine {
  return {
    kind: kind as DraftInvoiceLine['kind'],
    description: `${description} (correction)`,
    metricCode,
    quantity,
    amount: formatMoney(difference, currency),
    periodStart: period.start,
    periodEnd: period.end,
    breakdown: { previouslyInvoiced: formatMoney(before, currency), recomputed: formatMoney(after, currency) },
  };
}

/** An invoice line as re-rating reads it: its identity and what it billed. */
export interface BilledLine {
  readonly kind: string;
  readonly metricCode: string | null;
  readonly description: string;
  readonly amount: string;
  readonly breakdown?: unknown;
}

/**
 * What was billed for a period so far: the original invoice's usage lines plus the lines of corrections already
 * carried out (their " (correction)" suffix dropped, so a line keeps one description across re-ratings).
 */
export function invoicedAmounts(originalLines: readonly BilledLine[], correctionLines: readonly BilledLine[]): InvoicedAmount[] {
  return [
    ...originalLines.map((line) => ({ key: lineKey(line), description: line.description, amount: toDecimal(line.amount).toString(), breakdown: line.breakdown })),
    ...correctionLines.map((line) => ({ key: lineKey(line), description: line.description.replace(/ \(correction\)$/, ''), amount: line.amount, breakdown: line.breakdown })),
  ];
}

/** The amount a credit proposal refunds: its (negative) total as a positive amount. */
export function creditAmountOf(proposalTotal: string): Dec {
  return toDecimal(proposalTotal).abs();
}

/** What one paid invoice of the period can still give back (its payment less what was refunded or credited of it). */
export interface RefundCapacity {
  readonly invoiceId: string;
  readonly refundable: Dec;
}

/**
 * How a re-rating's cash credit is refunded over the paid invoices that billed the period, in preference order (the
 * re-rated invoice, then threshold invoices and adjustments, newest first): the first that can give it all back, else
 * each in turn up to what it can. Undefined when all of them together cannot. Threshold invoices can have collected
 * most of a period's usage, so the period invoice alone may hold less than the credit (docs/pricing.md).
 */
export function refundShares(amount: Dec, capacities: readonly RefundCapacity[]): { invoiceId: string; amount: Dec }[] | undefined {
  const { shares, unrefunded } = refundSharesUpTo(amount, capacities);
  return unrefunded.gt(0) ? undefined : shares;
}

/**
 * As refundShares, but when they cannot give all of it back together: each gives what it can, and `unrefunded` is
 * what none of them can (zero when they can).
 */
export function refundSharesUpTo(amount: Dec, capacities: readonly RefundCapacity[]): { shares: { invoiceId: string; amount: Dec }[]; unrefunded: Dec } {
  const whole = capacities.find((capacity) => capacity.refundable.gte(amount));
  if (whole) return { shares: [{ invoiceId: whole.invoiceId, amount }], unrefunded: new Dec(0) };
  const shares: { invoiceId: string; amount: Dec }[] = [];
  let rest = amount;
  for (const { invoiceId, refundable } of capacities) {
    if (rest.lte(0)) break;
    const share = Dec.min(rest, refundable);
    if (share.lte(0)) continue;
    shares.push({ invoiceId, amount: share });
    rest = rest.minus(share);
  }
  return { shares, unrefunded: rest };
}
