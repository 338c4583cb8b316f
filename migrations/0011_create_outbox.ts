import type { Knex } from 'knex';

/** Transactional outbox: customer-facing events written in the same transaction as the change they describe. */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('outbox', (t) => {
    t.bigIncrements('id');
    t.text('event_type').notNullable(); // invoice.finalized, payment.succeeded, subscription.canceled...
    t.text('aggregate_type').notNullable();
    t.text('aggregate_id').notNullable();
    t.text('dedupe_key').notNullable().unique(); // a retried activity must not emit twice
    t.jsonb('payload').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.timestamp('dispatched_at', { useTz: true });
    t.index(['dispatched_at', 'id']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('outbox');
}
