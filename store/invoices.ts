import type { Knex } from 'knex';
import { DraftInvoiceLine, invoiceTotal } from '../domain/invoice';
import { enqueueOutboxEvent } from './outbox';

type Db = Knex | Knex.Transaction;

export interface InvoiceRow {
  id: string;
  number: string | null;
  customer_id: string;
  subscription_id: string | null;
  kind: string;
  status: 'draft' | 'open' | 'paid' | 'uncollectible' | 'void';
  currency: string;
  period_start: Date;
  period_end: Date;
  total: string;
  finalized_at: Date | null;
  paid_at: Date | null;
  created_at: Date;
}

export interface InvoiceLineRow {
  id: string;
  invoice_id: string;
  position: number;
  kind: string;
  description: string;
  metric_code: string | null;
  quantity: string;
  amount: string;
  period_start: Date;
  period_end: Date;
  breakdown: Record<string, unknown>;
}

/**
 * The next number of a gap-free series. Runs in the finalizing transaction: the counter row stays locked
 * until commit, and a rollback returns the number, so numbers are consecutive with no holes.
 */
export async function nextInvoiceNumber(trx: Knex.Transaction, series: string): Promise<string> {
  const result = await trx.raw<{ rows: { last_number: string }[] }>(
    `INSERT INTO invoice_number_sequences (series, last_number) VALUES (?, 1)
     ON CONFLICT (series) DO UPDATE SET last_number = invoice_number_sequences.last_number + 1
     RETURNING last_number`,
    [series],
  );
  return `${series}-${result.rows[0].last_number.padStart(6, '0')}`;
}

export interface NewInvoice {
  readonly customerId: string;
  readonly subscriptionId: string;
  readonly kind: string;
  readonly currency: string;
  readonly periodStart: string;
  readonly periodEnd: string;
}

/**
 * Inserts a draft invoice unless one exists for (subscription, period start, kind).
 * Returns the new row, or null when the unique constraint says it was already done.
 */
export async function insertDraftInvoice(trx: Knex.Transaction, invoice: NewInvoice): Promise<InvoiceRow | null> {
  // The arbiter is the partial unique index invoices_one_per_period (migration 0017), named by its predicate.
  const result = await trx.raw<{ rows: InvoiceRow[] }>(
    `INSERT INTO invoices (customer_id, subscription_id, kind, status, currency, period_start, period_end)
     VALUES (?, ?, ?, 'draft', ?, ?, ?)
     ON CONFLICT (subscription_id, period_start, kind) WHERE kind IN ('period', 'closing', 'proration') DO NOTHING
     RETURNING *`,
    [invoice.customerId, invoice.subscriptionId, invoice.kind, invoice.currency, new Date(invoice.periodStart), new Date(invoice.periodEnd)],
  );
  return result.rows[0] ?? null;
}

export async function findPeriodInvoice(
  db: Knex | Knex.Transaction,
  subscriptionId: string,
  periodStart: string,
  kind: string,
): Promise<InvoiceRow | undefined> {
  return db<InvoiceRow>('invoices')
    .where({ subscription_id: subscriptionId, period_start: new Date(periodStart), kind })
    .first();
}

export async function insertInvoiceLines(
  trx: Knex.Transaction,
  invoiceId: string,
  lines: readonly DraftInvoiceLine[],
): Promise<void> {
  if (lines.length === 0) return;
  await trx('invoice_lines').insert(
    lines.map((line, position) => ({
      invoice_id: invoiceId,
      position,
      kind: line.kind,
      description: line.description,
      metric_code: line.metricCode,
      quantity: line.quantity,
      amount: line.amount,
      period_start: new Date(line.periodStart),
      period_end: new Date(line.periodEnd),
      breakdown: JSON.stringify(line.breakdown),
    })),
  );
}

export async function findInvoice(db: Knex | Knex.Transaction, invoiceId: string): Promise<InvoiceRow | undefined> {
  return db<InvoiceRow>('invoices').where({ id: invoiceId }).first();
}

export async function listInvoiceLines(db: Knex | Knex.Transaction, invoiceId: string): Promise<InvoiceLineRow[]> {
  return db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoiceId }).orderBy('position');
}

/** The series every subscription invoice (period, closing, proration, adjustment) is numbered in. */
export const INVOICE_SERIES = 'INV';

/**
 * Finalizes a draft in the caller's transaction: writes its lines, takes the next number of the series, sets the
 * total (the sum of the rounded lines) and status open, and queues `invoice.finalized`. After this the invoice is
 * never edited. `eventDetails` are added to the event's payload (a re-rating names itself).
 */
export async function finalizeInvoice(
  trx: Knex.Transaction,
  draft: InvoiceRow,
  lines: readonly DraftInvoiceLine[],
  eventDetails: Record<string, unknown> = {},
): Promise<InvoiceRow> {
  await insertInvoiceLines(trx, draft.id, lines);
  const number = await nextInvoiceNumber(trx, INVOICE_SERIES);
  const total = invoiceTotal(lines, draft.currency);
  const [finalized] = await trx<InvoiceRow>('invoices')
    .where({ id: draft.id })
    .update({ number, total, status: 'open', finalized_at: trx.fn.now() as unknown as Date })
    .returning('*');
  await enqueueOutboxEvent(trx, {
    eventType: 'invoice.finalized',
    aggregateType: 'invoice',
    aggregateId: finalized.id,
    dedupeKey: `invoice.finalized:${finalized.id}`,
    payload: { invoiceId: finalized.id, number, kind: draft.kind, total, currency: draft.currency, customerId: draft.customer_id, ...eventDetails },
  });
  return finalized;
}

export interface NewAdjustmentInvoice {
  readonly customerId: string;
  readonly subscriptionId: string;
  readonly currency: string;
  readonly periodStart: string;
  readonly periodEnd: string;
}

/** A draft adjustment invoice (a re-rating's extra charge); several may exist per period, so no unique key. */
export async function insertAdjustmentDraft(trx: Knex.Transaction, invoice: NewAdjustmentInvoice): Promise<InvoiceRow> {
  const [draft] = await trx<InvoiceRow>('invoices')
    .insert({
      customer_id: invoice.customerId,
      subscription_id: invoice.subscriptionId,
      kind: 'adjustment',
      status: 'draft',
      currency: invoice.currency,
      period_start: new Date(invoice.periodStart),
      period_end: new Date(invoice.periodEnd),
    })
    .returning('*');
  return draft;
}

/** The invoice's lines of these kinds that bill the period starting at `periodStart`. */
export async function listInvoiceLinesOfPeriod(
  db: Db,
  invoiceId: string,
  kinds: readonly string[],
  periodStart: Date,
): Promise<InvoiceLineRow[]> {
  return db<InvoiceLineRow>('invoice_lines')
    .where({ invoice_id: invoiceId })
    .whereIn('kind', [...kinds])
    .andWhere('period_start', periodStart);
}

/** The first usage line of an invoice: it names the usage period the invoice billed. */
export async function findFirstUsageLine(db: Db, invoiceId: string): Promise<InvoiceLineRow | undefined> {
  return db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoiceId, kind: 'usage' }).orderBy('position').first();
}

export interface InvoiceFilters {
  readonly customerId?: string;
  readonly subscriptionId?: string;
  readonly status?: InvoiceRow['status'];
}

/** Invoices matching every given filter, by period then creation. */
export async function listInvoices(db: Db, filters: InvoiceFilters, limit: number): Promise<InvoiceRow[]> {
  const where: Partial<InvoiceRow> = {};
  if (filters.customerId) where.customer_id = filters.customerId;
  if (filters.subscriptionId) where.subscription_id = filters.subscriptionId;
  if (filters.status) where.status = filters.status;
  return db<InvoiceRow>('invoices')
    .where(where)
    .orderBy([{ column: 'period_start' }, { column: 'created_at' }])
    .limit(limit);
}

/**
 * A subscription's issued (non-draft) invoices and the credit notes against them, newest first. Credit notes carry
 * no subscription_id (migration 0104): they are found through the invoice they credit.
 */
export async function listSubscriptionInvoices(
  db: Knex,
  subscriptionId: string,
  limit: number,
): Promise<(InvoiceRow & { credited_invoice_id: string | null })[]> {
  return db<InvoiceRow & { credited_invoice_id: string | null }>('invoices')
    .whereNot({ status: 'draft' })
    .andWhere((where) =>
      where
        .where({ subscription_id: subscriptionId })
        .orWhere((credit) =>
          credit.where({ kind: 'credit_note' }).whereIn('credited_invoice_id', db('invoices').select('id').where({ subscription_id: subscriptionId })),
        ),
    )
    .orderBy([
      { column: 'created_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ])
    .limit(limit);
}
