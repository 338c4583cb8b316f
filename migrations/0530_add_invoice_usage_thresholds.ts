import type { Knex } from 'knex';

/**
 * Progressive billing (docs/pricing.md): a threshold invoice names the threshold it is for, and there is at most one
 * per (subscription, usage stretch start, threshold index). The unique index is the duplicate barrier for stale or
 * repeated threshold signals, retried activities and a worker crash between the invoice and its charge.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('invoices', (t) => {
    t.integer('threshold_index');
    t.decimal('threshold_amount', 30, 12);
  });
  await db.raw(
    `CREATE UNIQUE INDEX invoices_one_per_threshold ON invoices (subscription_id, period_start, threshold_index)
     WHERE kind = 'threshold'`,
  );
  await db.raw(
    `ALTER TABLE invoices ADD CONSTRAINT invoices_threshold_named
     CHECK (kind <> 'threshold' OR (threshold_index IS NOT NULL AND threshold_index > 0 AND threshold_amount IS NOT NULL))`,
  );
}

export async function down(db: Knex): Promise<void> {
  await db.raw('ALTER TABLE invoices DROP CONSTRAINT invoices_threshold_named');
  await db.raw('DROP INDEX invoices_one_per_threshold');
  await db.schema.alterTable('invoices', (t) => {
    t.dropColumn('threshold_amount');
    t.dropColumn('threshold_index');
  });
}
