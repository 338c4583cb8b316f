import type { Knex } from 'knex';

/** One row per charge attempt, written before the gateway is called (intent before side effect). */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('payments', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.uuid('invoice_id').notNullable().references('invoices.id').index();
    t.integer('attempt').notNullable();
    t.text('status').notNullable(); // pending | succeeded | failed
    t.decimal('amount', 30, 12).notNullable();
    t.string('currency', 3).notNullable();
    t.text('payment_method');
    t.text('idempotency_key').notNullable().unique(); // payment:<invoice id>:<attempt>
    t.text('gateway_charge_id');
    t.text('failure_code');
    t.text('failure_message');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.unique(['invoice_id', 'attempt']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('payments');
}
