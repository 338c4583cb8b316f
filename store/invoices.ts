import type { Knex } from 'knex';
import type { DraftInvoiceLine } from '../domain/invoice';

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
