import type { Knex } from 'knex';

/**
 * One email per (outbox event, recipient), rendered once when the event is fanned out, so every retry sends
 * the same text. Sent through the configured sink (file folder or log).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('email_deliveries', (t) => {
    t.bigIncrements('id');
    t.bigInteger('outbox_id').notNullable().references('outbox.id');
    t.text('event_type').notNullable();
    t.text('recipient').notNullable();
    t.text('subject').notNullable();
    t.text('body').notNullable();
    t.text('status').notNullable(); // pending | delivered | failed
    t.integer('attempt').notNullable().defaultTo(0);
    t.text('last_error');
    t.timestamp('next_attempt_at', { useTz: true });
    t.timestamp('delivered_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.unique(['outbox_id', 'recipient']);
  });
  await db.raw(`CREATE INDEX email_deliveries_due ON email_deliveries (next_attempt_at) WHERE status = 'pending'`);
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('email_deliveries');
}
