import type { Knex } from 'knex';

/**
 * Each usage event is claimed by exactly one period close (the closure that counted it). An unclaimed event
 * whose time falls in a closed period arrived late: it is listed for re-rating, never silently dropped.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('usage_events', (t) => {
    t.bigInteger('period_close_id').references('usage_period_closures.id');
  });
  await db.raw(
    'CREATE INDEX usage_events_unclaimed_idx ON usage_events (customer_id, event_type, occurred_at) WHERE period_close_id IS NULL',
  );
  await db.raw('CREATE INDEX usage_events_period_close_idx ON usage_events (period_close_id) WHERE period_close_id IS NOT NULL');
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP INDEX usage_events_period_close_idx');
  await db.raw('DROP INDEX usage_events_unclaimed_idx');
  await db.schema.alterTable('usage_events', (t) => t.dropColumn('period_close_id'));
}
