import type { Knex } from 'knex';

/**
 * At most one payment attempt of an invoice is in flight: attempt n+1 cannot start while attempt n's outcome
 * is unknown, so two attempts can never both charge. chargeInvoice resolves the pending one first.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(`CREATE UNIQUE INDEX payments_one_pending_per_invoice ON payments (invoice_id) WHERE status = 'pending'`);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP INDEX payments_one_pending_per_invoice');
}
