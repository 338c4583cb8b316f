import type { Knex } from 'knex';

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('invoices', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.text('number').unique(); // assigned at finalization, gap-free per series
    t.uuid('customer_id').notNullable().references('customers.id').index();
    t.uuid('subscription_id').references('subscriptions.id').index();
    t.text('kind').notNullable(); // period | proration | adjustment | credit_note
    t.text('status').notNullable(); // draft | open | paid | uncollectible | void
    t.string('currency', 3).notNullable();
    t.timestamp('period_start', { useTz: true }).notNullable();
    t.timestamp('period_end', { useTz: true }).notNullable();
    t.decimal('total', 30, 12).notNullable().defaultTo(0); // sum of the rounded lines
    t.timestamp('finalized_at', { useTz: true });
    t.timestamp('paid_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    // Exactly once: one invoice of a kind per subscription and period, however often the activity runs.
    t.unique(['subscription_id', 'period_start', 'kind']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('invoices');
}
