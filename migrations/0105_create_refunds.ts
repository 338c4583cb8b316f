import type { Knex } from 'knex';

/**
 * The money going back for a credit note: written (pending) in the credit note's transaction, before the
 * gateway call, whose idempotency key comes from it (`refund:<credit note id>`).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('refunds', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.uuid('credit_note_id').notNullable().unique().references('invoices.id');
    t.uuid('invoice_id').notNullable().references('invoices.id').index(); // the credited invoice
    t.uuid('payment_id').notNullable().references('payments.id');
    t.decimal('amount', 30, 12).notNullable();
    t.string('currency', 3).notNullable();
    t.text('reason').notNullable();
    t.text('status').notNullable(); // pending | succeeded | failed
    t.text('idempotency_key').notNullable().unique();
    t.text('gateway_refund_id');
    t.text('failure_code');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('refunds');
}
