import type { Knex } from 'knex';

/**
 * The billing period an immediate plan change split, recorded with the change: each usage stretch of the period
 * gets its share of the plan's allowances (credit bucket, minimum commitment) by its part of the period's time
 * (domain/allowances.ts). Null on changes recorded before: their stretches keep whole allowances, as they were billed.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('plan_changes', (t) => {
    t.timestamp('period_start', { useTz: true, precision: 3 });
    t.timestamp('period_end', { useTz: true, precision: 3 });
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('plan_changes', (t) => {
    t.dropColumn('period_start');
    t.dropColumn('period_end');
  });
}
