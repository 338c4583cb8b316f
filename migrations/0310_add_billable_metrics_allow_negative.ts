import type { Knex } from 'knex';

/**
 * A metric refuses negative values unless it opts in (a corrections metric, e.g. credits given back): a negative
 * value on an ordinary metric used to be stored and then break the period invoice. Existing metrics default to
 * refusing them.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('billable_metrics', (t) => t.boolean('allow_negative').notNullable().defaultTo(false));
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('billable_metrics', (t) => t.dropColumn('allow_negative'));
}
