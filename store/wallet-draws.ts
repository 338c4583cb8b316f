/**
 * Invoices' wallet draws (issue 12, docs/wallets.md): the draw key of an invoice, and the give-back of a reversed
 * outcome's credit to the draw of the invoice that billed its period. What a draw still holds is read from the ledger,
 * whose entry keys carry the draw key (`draw:<key>:...`, `reverse:<key>/...`, goodwill grants `goodwill:<key>/...`),
 * and what it paid of each line from wallet_draw_lines (store/wallets.ts drawHoldings, plannedLineGiveBacks).
 */
import type { Knex } from 'knex';
import type { DraftInvoiceLine, PeriodBounds } from '../domain/invoice';
import { formatMoney, sumMoney, toDecimal, ZERO } from '../domain/money';
import type { InvoiceRow } from './invoices';
import { loweredLines } from '../domain/wallet-invoice';
import { plannedLineGiveBacks, reverseWalletCreditsByLine, type LineGiveBackRequest } from './wallets';

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
  // Line by line, as a re-rating's: only the grants that paid the reversed usage get it back; the card's share stays cash.
  const given = toDecimal(
    await giveBack({ customerId: request.customerId, currency: request.currency, drawKey, lowered: loweredLines(request.creditLines), cap: credit.abs().toString() }),
  );
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
