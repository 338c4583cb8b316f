import type { Knex } from 'knex';

/**
 * Reversible outcomes: a reversal event names the event it takes back (`reverses_event_id`), and the original
 * records who reversed it (`reversed_by_event_id`) so aggregation skips it with a column test instead of a join.
 * One reversal per original: the partial unique index is the duplicate barrier.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('usage_events', (t) => {
    t.text('reverses_event_id');
    t.text('reversed_by_event_id');
    // On a reversal of an already invoiced outcome: the invoice that credited it ("<kind>:<period start>" of the
    // subscription's invoice), written in that invoice's transaction, so it is credited exactly once.
    t.text('reversal_credited_on');
  });
  await db.raw('CREATE UNIQUE INDEX usage_events_one_reversal ON usage_events (customer_id, reverses_event_id) WHERE reverses_event_id IS NOT NULL');
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP INDEX IF EXISTS usage_events_one_reversal');
  await db.schema.alterTable('usage_events', (t) => {
    t.dropColumn('reverses_event_id');
    t.dropColumn('reversed_by_event_id');
    t.dropColumn('reversal_credited_on');
  });
}
