/**
 * Invoices' wallet draws (issue 12, docs/wallets.md): the draw key of an invoice, and the give-back of a reversed
 * outcome's credit to the draw of the invoice that billed its period. What a draw still holds is read from the ledger,
 * whose entry keys carry the draw key (`draw:<key>:...`, `reverse:<key>/...`, goodwill grants `goodwill:<key>/...`),
 * and what it paid of each line from wallet_draw_lines (store/wallets.ts drawHoldings, plannedLineGiveBacks).
 */
import type { Knex } from 'knex';
import type { DraftInvoiceLine, PeriodBounds } from '../domain/invoice';
import { Dec, formatMoney, sumMoney, toDecimal, ZERO } from '../domain/money';
import type { InvoiceRow } from './invoices';
import { loweredBeyondCorrectionCash, loweredLines, type CarriedOutCorrection } from '../domain/wallet-invoice';
import type { LoweredLine } from '../domain/wallet';
import { listFinalizedRerates } from './rerates';
import { drawLineRows } from './wallet-draw-lines';
import { findWallet, plannedLineGiveBacks, reverseWalletCreditsByLine, type LineGiveBackRequest } from './wallets';

type Db = Knex | Knex.Transaction;

/** The wallet draw key of an invoice: the invoicing activity draws once per (subscription, kind, period start). */
export function invoiceDrawKey(invoice: { subscription_id: string | null; kind: string; period_start: Date }): string {
  return `invoice:${invoice.subscription_id}:${invoice.kind}:${invoice.period_start.toISOString()}`;
}

/**
 * The invoice that billed a subscription's usage period (its usage lines start at `periodStart`): the period,
 * closing or proration invoice whose wallet draw paid that usage. Adjustments and credit notes are not draws.
 */
export async function invoiceBillingUsagePeriod(db: Db, subscriptionId: string, periodStart: Date): Promise<InvoiceRow | undefined> {
  const row: InvoiceRow | undefined = await db('invoices as i')
    .where({ 'i.subscription_id': subscriptionId })
    .whereIn('i.kind', ['period', 'closing', 'proration'])
    .whereExists((lines) => lines.select(1).from('invoice_lines as l').whereRaw('l.invoice_id = i.id').andWhere({ 'l.kind': 'usage', 'l.period_start': periodStart }))
    .orderBy('i.created_at')
    .first('i.*');
  return row;
}

/**
 * The lines a credit against the invoice's period (a re-rating's difference, a reversed outcome's credit) may give
 * back to its draw: lowered by the credit, less the cash that the invoice's carried-out re-ratings (adjustments paid
 * by card; `exceptRerateId`, the one asking) still hold of each line, which goes back first (loweredBeyondCorrectionCash).
 * One rule for both: a reversal after a +12.40 adjustment gave the grant the 7.40 it had paid and credited 5.00 in
 * cash, where billed at the final figures from the start the card's 12.40 comes back and the grant keeps paying 7.40.
 */
export async function walletLoweredLines(
  db: Db,
  invoice: Pick<InvoiceRow, 'id' | 'customer_id' | 'currency'>,
  drawKey: string,
  lines: readonly DraftInvoiceLine[],
  exceptRerateId?: string,
): Promise<LoweredLine[]> {
  const lowered = loweredLines(lines);
  // Each builds on all the ones carried out before it: by how many, their order.
  const earlier = (await listFinalizedRerates(db, invoice.id, exceptRerateId)).sort((a, b) => (a.proposal?.buildsOn?.length ?? 0) - (b.proposal?.buildsOn?.length ?? 0));
  if (earlier.length === 0) return lowered;
  const wallet = await findWallet(db, invoice.customer_id, invoice.currency);
  const rows = wallet ? await drawLineRows(db, wallet.id, drawKey) : [];
  const rerates = earlier.map((correction) => ({
    at: correction.decided_at ?? new Date(0),
    outcome: correction.proposal?.outcome ?? 'none',
    lines: correction.proposal?.lines ?? [],
    walletGiven: rows.filter((row) => row.part === `rerate:${correction.id}`).map((row) => ({ lineKey: row.line_key, amount: row.amount })),
  }));
  // Reversal credits given since are corrections too, in the order they were carried out: one that credited the
  // adjustment's 12.40 in cash leaves none of it to refund again (before, a re-rating back down then refunded 6.20
  // more and the grant that paid the line got nothing back).
  const reversals = await reversalCorrections(db, invoice, drawKey, rows);
  const corrections: CarriedOutCorrection[] = [...rerates, ...reversals].sort((a, b) => a.at.getTime() - b.at.getTime());
  return loweredBeyondCorrectionCash(lowered, corrections);
}

/**
 * The reversal credits given for the usage period the invoice billed, one correction per later invoice or credit note
 * that carried them (oldest first), each with what it gave back to the draw per line: its give-back line's amount,
 * over its lowered lines in order, up to what the draw's reversal give-backs returned of each line.
 */
async function reversalCorrections(
  db: Db,
  invoice: Pick<InvoiceRow, 'id'>,
  drawKey: string,
  rows: readonly { part: string; line_key: string; amount: string }[],
): Promise<(CarriedOutCorrection & { at: Date })[]> {
  const result = await db.raw<{ rows: { id: string; created_at: Date; on_credit_note: boolean; kind: string; metric_code: string | null; amount: string; breakdown: Record<string, unknown> | null }[] }>(
    `SELECT i.id, i.created_at, i.kind = 'credit_note' AS on_credit_note, l.kind, l.metric_code, l.amount::text AS amount, l.breakdown
     FROM invoices b
     JOIN invoices i ON i.subscription_id = b.subscription_id AND i.id <> b.id AND i.status <> 'void'
     JOIN invoice_lines l ON l.invoice_id = i.id
     WHERE b.id = ?
       AND l.period_start = (SELECT min(u.period_start) FROM invoice_lines u WHERE u.invoice_id = b.id AND u.kind = 'usage')
       AND ((l.breakdown ->> 'reversal') = 'true' OR (l.breakdown ->> 'drawKey') = ?)
     ORDER BY i.created_at, i.id, l.position`,
    [invoice.id, drawKey],
  );
  // What the reversals' give-backs returned of each line, consumed by the credits in order.
  const givenLeft = new Map<string, Dec>();
  for (const row of rows) if (row.part.startsWith('reversal:')) givenLeft.set(row.line_key, (givenLeft.get(row.line_key) ?? ZERO).plus(toDecimal(row.amount)));
  const byCredit = new Map<string, typeof result.rows>();
  for (const row of result.rows) byCredit.set(row.id, [...(byCredit.get(row.id) ?? []), row]);
  return [...byCredit.values()].map((creditRows) => {
    const giveBack = creditRows.filter((row) => row.breakdown?.walletGiveBack !== undefined);
    // Signed as on an invoice: a credit note stores its usage credit lines positive.
    const lines: DraftInvoiceLine[] = creditRows
      .filter((row) => row.breakdown?.walletGiveBack === undefined && (!row.on_credit_note || row.metric_code !== null))
      .map((row) => ({
        kind: (row.on_credit_note ? 'usage' : row.kind) as DraftInvoiceLine['kind'],
        description: '',
        metricCode: row.metric_code,
        quantity: '1',
        amount: (row.on_credit_note ? toDecimal(row.amount).negated() : toDecimal(row.amount)).toFixed(),
        periodStart: '',
        periodEnd: '',
        breakdown: row.breakdown ?? {},
      }));
    let left = sumMoney(giveBack.map((row) => toDecimal(row.amount).abs()));
    const walletGiven = loweredLines(lines).map((line) => {
      const amount = Dec.min(left, toDecimal(line.amount), givenLeft.get(line.lineKey) ?? ZERO);
      left = left.minus(amount);
      givenLeft.set(line.lineKey, (givenLeft.get(line.lineKey) ?? ZERO).minus(amount));
      return { lineKey: line.lineKey, amount: amount.toFixed() };
    });
    return { at: creditRows[0].created_at, outcome: 'credit' as const, lines, walletGiven };
  });
}

/**
 * Outcomes reversed after their period was invoiced (store/reversal-credits.ts): when the invoice that billed
 * the period drew on the wallet, the credit goes back to the wallet first, like a re-rating's, and the next
 * invoice (or the credit note, once the subscription ended) carries a line that offsets what went back, so only the
 * rest is paid back in cash. Keyed by what carries the credit (`creditedOn`): its transaction runs once. No draw,
 * no line.
 */
export async function reversalCreditToWallet(
  trx: Knex.Transaction,
  request: { subscriptionId: string; customerId: string; currency: string; creditedOn: string; period: PeriodBounds; creditLines: readonly DraftInvoiceLine[] },
): Promise<DraftInvoiceLine[]> {
  return giveBackLine(trx, request, (giveBack) => reverseWalletCreditsByLine(trx, { ...giveBack, reversalKey: `reversal:${request.creditedOn}`, at: new Date() }));
}

/**
 * The line reversalCreditToWallet would add for these credit lines if they were credited now, without writing
 * (plannedLineGiveBacks): what the usage preview and the wallet's pending usage project of the next invoice.
 */
export async function plannedReversalCreditToWallet(
  db: Knex,
  request: { subscriptionId: string; customerId: string; currency: string; period: PeriodBounds; creditLines: readonly DraftInvoiceLine[] },
): Promise<DraftInvoiceLine[]> {
  return giveBackLine(db, request, async (giveBack) => sumMoney((await plannedLineGiveBacks(db, giveBack)).map((line) => toDecimal(line.amount))).toFixed());
}

/** The offsetting line for what `giveBack` returns to the draw that paid the period (nothing without a draw). */
async function giveBackLine(
  db: Db,
  request: { subscriptionId: string; customerId: string; currency: string; period: PeriodBounds; creditLines: readonly DraftInvoiceLine[] },
  giveBack: (request: LineGiveBackRequest) => Promise<string>,
): Promise<DraftInvoiceLine[]> {
  const credit = sumMoney(request.creditLines.map((line) => toDecimal(line.amount)));
  if (!credit.isNegative()) return [];
  const billed = await invoiceBillingUsagePeriod(db, request.subscriptionId, new Date(request.period.start));
  if (!billed) return [];
  const drawKey = invoiceDrawKey(billed);
  // Line by line, as a re-rating's: only the grants that paid the reversed usage get it back; the card's share stays
  // cash, and what the period's adjustments raised a line by (paid by card) comes back in cash first.
  const lowered = await walletLoweredLines(db, billed, drawKey, request.creditLines);
  const given = toDecimal(await giveBack({ customerId: request.customerId, currency: request.currency, drawKey, lowered, cap: credit.abs().toString() }));
  if (given.lte(ZERO)) return [];
  return [
    {
      kind: 'credit',
      description: 'Reversed usage credit returned to your prepaid credits',
      metricCode: null,
      quantity: '1',
      amount: formatMoney(given, request.currency),
      periodStart: request.period.start,
      periodEnd: request.period.end,
      breakdown: { walletGiveBack: formatMoney(given, request.currency), drawKey },
    },
  ];
}
