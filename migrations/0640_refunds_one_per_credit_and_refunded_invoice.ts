import type { Knex } from 'knex';

/**
 * A credit total (a negative invoice) larger than any one payment of the time it credits is refunded across that
 * time's paid invoices (store/credit-total-refunds.ts): one refund per credit document and refunded invoice, not one
 * per credit document. Before, the unique credit_note_id kept the split from being written and the credit was not
 * refunded at all. A credit note (kind credit_note) still has exactly one refund: it credits one invoice.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw('ALTER TABLE refunds DROP CONSTRAINT refunds_credit_note_id_unique');
  await db.raw('CREATE UNIQUE INDEX refunds_one_per_credit_and_refunded_invoice ON refunds (credit_note_id, invoice_id)');
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP INDEX refunds_one_per_credit_and_refunded_invoice');
  await db.raw('ALTER TABLE refunds ADD CONSTRAINT refunds_credit_note_id_unique UNIQUE (credit_note_id)');
}
