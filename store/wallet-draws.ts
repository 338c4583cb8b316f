/**
 * What an invoice's wallet draw still holds (issue 12, docs/wallets.md): what it took from the grants (and the
 * overdraft), minus what re-ratings and reversed outcomes have given back so far. Read from the ledger, whose
 * entry keys carry the draw key (`draw:<key>:...`, `reverse:<key>/...`, goodwill grants `goodwill:<key>/...`).
 */
import type { Knex } from 'knex';
import { Dec, formatMoney, toDecimal, ZERO } from '../domain/money';
import type { InvoiceRow } from './invoices';
import { findWallet } from './wallets';

type Db = Knex | Knex.Transaction;

const likeEscaped = (text: string) => text.replace(/[\\%_]/g, '\\$&');

/** The wallet draw key of an invoice: the invoicing activity draws once per (subscription, kind, period start). */
export function invoiceDrawKey(invoice: { subscription_id: string | null; kind: string; period_start: Date }): string {
  return `invoice:${invoice.subscription_id}:${invoice.kind}:${invoice.period_start.toISOString()}`;
}

export async function outstandingDraw(db: Db, customerId: string, currency: string, drawKey: string): Promise<string> {
  const wallet = await findWallet(db, customerId, currency);
  if (!wallet) return formatMoney(ZERO, currency);
  const [drawn, givenBack, goodwill] = await Promise.all([
    db('wallet_ledger').where({ wallet_id: wallet.id, kind: 'consumption' }).andWhere('entry_key', 'like', `draw:${likeEscaped(drawKey)}:%`).sum({ total: 'amount' }).first(),
    db('wallet_ledger').where({ wallet_id: wallet.id, kind: 'reversal' }).andWhere('entry_key', 'like', `reverse:${likeEscaped(drawKey)}/%`).sum({ total: 'amount' }).first(),
    db('wallet_grants').where({ wallet_id: wallet.id, source: 'goodwill' }).andWhere('grant_key', 'like', `goodwill:${likeEscaped(drawKey)}/%`).sum({ total: 'amount' }).first(),
  ]);
  const sumOf = (row: { total?: unknown } | undefined) => toDecimal(String(row?.total ?? 0));
  const outstanding = sumOf(drawn).neg().minus(sumOf(givenBack)).minus(sumOf(goodwill));
  return formatMoney(Dec.max(outstanding, ZERO), currency);
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
