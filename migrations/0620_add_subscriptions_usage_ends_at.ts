import type { Knex } from 'knex';

/**
 * Where a subscription's billable usage stops, written by its workflow as soon as it decides the end (a cancellation
 * now, dunning giving up, a cancellation at a period end). Before, ingestion learned of an end only from the status
 * and the closing invoice, which come after the usage grace window: usage stamped after a cancellation now was
 * accepted meanwhile and never billed. Null while no end is decided (and again after a win-back restart).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('subscriptions', (t) => {
    t.timestamp('usage_ends_at', { useTz: true });
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('subscriptions', (t) => {
    t.dropColumn('usage_ends_at');
  });
}
