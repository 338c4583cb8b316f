import type { Knex } from 'knex';

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('usage_events', (t) => {
    t.bigIncrements('id');
    t.uuid('customer_id').notNullable().references('customers.id');
    t.text('event_id').notNullable(); // chosen by the client; the duplicate barrier below
    t.text('event_type').notNullable();
    t.timestamp('occurred_at', { useTz: true }).notNullable();
    t.jsonb('properties').notNullable().defaultTo('{}');
    t.timestamp('received_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.boolean('late').notNullable().defaultTo(false); // arrived after its period was closed
    // Exactly once: a resent event (same customer, same id) is acknowledged, never stored twice.
    t.unique(['customer_id', 'event_id']);
    t.index(['customer_id', 'event_type', 'occurred_at']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('usage_events');
}
