import type { Knex } from 'knex';

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('invoice_lines', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.uuid('invoice_id').notNullable().references('invoices.id').onDelete('CASCADE');
    t.integer('position').notNullable();
    t.text('kind').notNullable(); // flat_fee | usage | credit | commitment_true_up | proration
    t.text('description').notNullable();
    t.text('metric_code');
    t.decimal('quantity', 30, 12).notNullable().defaultTo(1);
    t.decimal('amount', 30, 12).notNullable(); // rounded once, half-up, to the currency's minor unit
    t.timestamp('period_start', { useTz: true }).notNullable();
    t.timestamp('period_end', { useTz: true }).notNullable();
    t.jsonb('breakdown').notNullable().defaultTo('{}'); // how the amount was computed, checkable by hand
    t.unique(['invoice_id', 'position']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('invoice_lines');
}
