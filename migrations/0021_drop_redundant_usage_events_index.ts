import type { Knex } from 'knex';

/**
 * Every usage read goes through usage_events_unclaimed_idx (open usage: same columns, WHERE period_close_id IS
 * NULL) or usage_events_period_close_idx (a closed period). The full (customer, type, time) index only slowed
 * ingestion: dropping it raised the measured insert ceiling by 10-30 % (docs/benchmarks.md).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('usage_events', (t) => t.dropIndex(['customer_id', 'event_type', 'occurred_at']));
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('usage_events', (t) => t.index(['customer_id', 'event_type', 'occurred_at']));
}
