import type { Knex } from 'knex';

export async function up(db: Knex): Promise<void> {
  await db.raw('CREATE EXTENSION IF NOT EXISTS pgcrypto'); // gen_random_uuid() on older servers
  await db.schema.createTable('customers', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.text('external_id').notNullable().unique(); // the id the seller's app knows the customer by
    t.text('name').notNullable();
    t.text('email');
    t.string('currency', 3).notNullable();
    t.text('payment_method'); // a gateway token, never card data
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('customers');
}
