/**
 * Threshold invoices (progressive billing, docs/pricing.md): invoices of kind `threshold`, at most one per
 * (subscription, usage stretch start, threshold index) by the unique index of migration 0530.
 */
import type { Knex } from 'knex';
import type { BilledThreshold } from '../domain/progressive-billing';
import { thresholdBilledByLine, type ThresholdBilledByLine } from '../domain/wallet-invoice';
import { invoiceLinesAsDrafts, type InvoiceRow } from './invoices';

type Db = Knex | Knex.Transaction;

export const THRESHOLD_INVOICE_KIND = 'threshold';

export type ThresholdInvoiceRow = InvoiceRow & { threshold_index: number | null; threshold_amount: string | null };

export interface NewThresholdInvoice {
  readonly customerId: string;
  readonly subscriptionId: string;
  readonly currency: string;
  /** The usage stretch's start: the period's, or an immediate plan change's instant. */
  readonly usageStart: string;
  /** The instant the usage was rated up to. */
  readonly ratedUntil: string;
  readonly thresholdIndex: number;
  readonly thresholdAmount: string;
}

/** Inserts the draft unless this threshold of the stretch has one; null when it has (already done). */
export async function insertThresholdDraft(trx: Knex.Transaction, invoice: NewThresholdInvoice): Promise<ThresholdInvoiceRow | null> {
  const result = await trx.raw<{ rows: ThresholdInvoiceRow[] }>(
    `INSERT INTO invoices (customer_id, subscription_id, kind, status, currency, period_start, period_end, threshold_index, threshold_amount)
     VALUES (?, ?, 'threshold', 'draft', ?, ?, ?, ?, ?)
     ON CONFLICT (subscription_id, period_start, threshold_index) WHERE kind = 'threshold' DO NOTHING
     RETURNING *`,
    [
      invoice.customerId,
      invoice.subscriptionId,
      invoice.currency,
      new Date(invoice.usageStart),
      new Date(invoice.ratedUntil),
      invoice.thresholdIndex,
      invoice.thresholdAmount,
    ],
  );
  return result.rows[0] ?? null;
}

/** The stretch's threshold invoices, finalized or not, by threshold. */
export async function listThresholdInvoices(db: Db, subscriptionId: string, usageStart: string | Date): Promise<ThresholdInvoiceRow[]> {
  return db<ThresholdInvoiceRow>('invoices')
    .where({ subscription_id: subscriptionId, kind: THRESHOLD_INVOICE_KIND, period_start: new Date(usageStart) })
    .orderBy('threshold_index');
}

/** The highest threshold invoiced for the subscription since `since` (0 when none): what the API compares with. */
export async function highestInvoicedThreshold(db: Db, subscriptionId: string, since: Date): Promise<number> {
  const row = await db('invoices')
    .where({ subscription_id: subscriptionId, kind: THRESHOLD_INVOICE_KIND })
    .andWhere('period_start', '>=', since)
    .max<{ highest: number | null }>('threshold_index as highest')
    .first();
  return row?.highest ?? 0;
}

/** A billing subscription whose current plan version sets usage thresholds. */
export interface ThresholdSubscription {
  readonly id: string;
  readonly workflow_id: string;
  readonly current_period_start: Date | null;
}

/**
 * The customers' billing subscriptions (active, past due, pending cancellation) whose plan sets usage thresholds:
 * one query, so ingestion for plans without thresholds costs the threshold check nothing more.
 */
export async function subscriptionsWithThresholds(db: Db, customerIds: readonly string[]): Promise<ThresholdSubscription[]> {
  return db('subscriptions')
    .join('plans', 'plans.id', 'subscriptions.plan_id')
    .whereIn('subscriptions.customer_id', [...customerIds])
    .whereIn('subscriptions.status', ['active', 'past_due', 'pending_cancellation'])
    .whereRaw("plans.settings -> 'usageThresholds' IS NOT NULL")
    .select('subscriptions.id', 'subscriptions.workflow_id', 'subscriptions.current_period_start');
}

/** Whether any charge was attempted on the invoice (a payment row exists). */
export async function hasPaymentAttempt(db: Db, invoiceId: string): Promise<boolean> {
  return (await db('payments').where({ invoice_id: invoiceId }).first('id')) !== undefined;
}

/** Finalized threshold invoices as later invoices credit them (drafts never billed anything). */
export function billedThresholds(rows: readonly ThresholdInvoiceRow[]): BilledThreshold[] {
  return rows
    .filter((row) => row.finalization_seq !== null && row.finalization_seq !== undefined && row.threshold_index !== null)
    .map((row) => ({ invoiceId: row.id, number: row.number ?? row.id, thresholdIndex: row.threshold_index!, total: row.total }));
}

/**
 * What a stretch's threshold invoices (`billed`, billedThresholds) billed of each usage line (domain/wallet-invoice.ts
 * thresholdBilledByLine), read from the latest one, whose lines hold all that they billed together; empty without
 * one. The wallet pays a usage line only for what no threshold invoice billed of it.
 */
export async function thresholdBilledUsage(db: Db, billed: readonly BilledThreshold[], currency: string): Promise<ThresholdBilledByLine> {
  const latest = [...billed].sort((a, b) => b.thresholdIndex - a.thresholdIndex)[0];
  if (!latest) return {};
  return thresholdBilledByLine(await invoiceLinesAsDrafts(db, latest.invoiceId), currency);
}
