import type { Knex } from 'knex';

/**
 * A metric may split its usage by event properties (`group_by`, e.g. ["model", "direction"]) so one charge can
 * price every combination (dimensional pricing, docs/pricing.md). Existing metrics group by nothing.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('billable_metrics', (t) => t.jsonb('group_by').notNullable().defaultTo('[]'));
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('billable_metrics', (t) => t.dropColumn('group_by'));
}
