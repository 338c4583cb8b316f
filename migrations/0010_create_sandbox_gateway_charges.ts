import type { Knex } from 'knex';

/** The sandbox payment gateway's own ledger, so tests can count real charges per idempotency key. */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('sandbox_gateway_charges', (t) => {
    t.text('id').primary(); // ch_<uuid>
    t.text('idempotency_key').notNullable().unique();
    t.text('payment_method').notNullable();
    t.decimal('amount', 30, 12).notNullable();
    t.string('currency', 3).notNullable();
    t.text('status').notNullable(); // succeeded | declined
    t.text('decline_code');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('sandbox_gateway_charges');
}
