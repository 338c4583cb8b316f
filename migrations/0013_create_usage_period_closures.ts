import type { Knex } from 'knex';

/**
 * One row per closed usage period of a subscription: when it closed and the aggregated totals the invoice
 * was built from. The unique (subscription, period start) makes closing a period idempotent.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('usage_period_closures', (t) => {
    t.bigIncrements('id');
    t.uuid('subscription_id').notNullable().references('subscriptions.id');
    t.uuid('customer_id').notNullable().references('customers.id');
    t.timestamp('period_start', { useTz: true }).notNullable();
    t.timestamp('period_end', { useTz: true }).notNullable();
    t.jsonb('totals').notNullable(); // { [metricCode]: { quantity, eventCount, eventValues? } }
    t.bigInteger('event_count').notNullable();
    t.timestamp('closed_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.unique(['subscription_id', 'period_start']);
    t.index(['customer_id', 'period_end']); // ingestion asks "is this event's period already closed?"
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('usage_period_closures');
}
