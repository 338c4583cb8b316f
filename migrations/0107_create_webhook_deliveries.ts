import type { Knex } from 'knex';

/**
 * One delivery of one outbox event to one endpoint, with its retry state. The dispatcher claims due rows with
 * FOR UPDATE SKIP LOCKED; each HTTP try is logged in webhook_delivery_attempts.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('webhook_deliveries', (t) => {
    t.bigIncrements('id');
    t.bigInteger('outbox_id').notNullable().references('outbox.id');
    t.uuid('endpoint_id').notNullable().references('webhook_endpoints.id').index();
    t.text('event_type').notNullable();
    t.text('status').notNullable(); // pending | delivered | failed (gave up after the last attempt)
    t.integer('attempt').notNullable().defaultTo(0); // tries made so far
    t.integer('last_status_code');
    t.text('last_error');
    t.timestamp('next_attempt_at', { useTz: true }); // null once delivered or failed
    t.timestamp('delivered_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.unique(['outbox_id', 'endpoint_id']); // an event reaches an endpoint through one delivery, however often fanned out
  });
  await db.raw(`CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'`);
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('webhook_deliveries');
}
