import type { Knex } from 'knex';

/** The delivery log: every HTTP try, its status code or error, and when the next try is due. */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('webhook_delivery_attempts', (t) => {
    t.bigIncrements('id');
    t.bigInteger('delivery_id').notNullable().references('webhook_deliveries.id').onDelete('CASCADE');
    t.integer('attempt').notNullable();
    t.integer('status_code'); // null when no HTTP response arrived
    t.text('error');
    t.integer('duration_ms').notNullable();
    t.timestamp('next_attempt_at', { useTz: true }); // null when delivered or given up
    t.timestamp('attempted_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.unique(['delivery_id', 'attempt']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('webhook_delivery_attempts');
}
