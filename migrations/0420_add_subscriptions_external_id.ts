import type { Knex } from 'knex';

/**
 * The id a subscription had in the system it was imported from: the import's duplicate barrier (a rerun finds the
 * row instead of creating another). Null for subscriptions created here.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('subscriptions', (t) => {
    t.text('external_id').unique();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('subscriptions', (t) => t.dropColumn('external_id'));
}
