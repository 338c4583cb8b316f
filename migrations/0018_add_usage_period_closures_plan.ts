import type { Knex } from 'knex';

/** The plan version a usage period was rated under, so re-rating recomputes it with the same prices. */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('usage_period_closures', (t) => {
    t.uuid('plan_id').references('plans.id');
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('usage_period_closures', (t) => t.dropColumn('plan_id'));
}
