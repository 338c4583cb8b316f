import type { Knex } from 'knex';

/**
 * One invoice per (subscription, period start, kind) holds for the invoices the subscription workflow writes
 * (period, closing, proration). Adjustment invoices from re-rating are many per period: each is tied to its
 * re-rating request instead (rerates.result_invoice_id), so the rule is narrowed to the scheduled kinds.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('invoices', (t) => t.dropUnique(['subscription_id', 'period_start', 'kind']));
  await db.raw(
    `CREATE UNIQUE INDEX invoices_one_per_period ON invoices (subscription_id, period_start, kind)
     WHERE kind IN ('period', 'closing', 'proration')`,
  );
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP INDEX invoices_one_per_period');
  await db.schema.alterTable('invoices', (t) => t.unique(['subscription_id', 'period_start', 'kind']));
}
