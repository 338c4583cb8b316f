import type { Knex } from 'knex';

/** Whether the gateway said a declined payment may succeed on a later try; null while pending or succeeded. */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('payments', (t) => {
    t.boolean('retryable');
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('payments', (t) => {
    t.dropColumn('retryable');
  });
}
