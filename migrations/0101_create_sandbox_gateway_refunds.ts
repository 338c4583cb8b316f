import type { Knex } from 'knex';

/** The sandbox gateway's refund ledger: one row per refund, so tests can see the money that went back. */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('sandbox_gateway_refunds', (t) => {
    t.text('id').primary(); // re_<uuid>
    t.text('idempotency_key').notNullable().unique(); // refund:<credit note id>
    t.text('charge_id').notNullable().references('sandbox_gateway_charges.id').index();
    t.decimal('amount', 30, 12).notNullable();
    t.string('currency', 3).notNullable();
    t.text('reason').notNullable();
    t.text('status').notNullable(); // succeeded
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('sandbox_gateway_refunds');
}
