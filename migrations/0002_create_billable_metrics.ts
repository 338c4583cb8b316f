import type { Knex } from 'knex';

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('billable_metrics', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.text('code').notNullable().unique();
    t.text('name').notNullable();
    t.text('event_type').notNullable().index(); // one event type may feed several metrics
    t.text('aggregation').notNullable(); // count | sum | max | unique_count | latest
    t.text('property'); // the event property aggregated (not needed for count)
    t.jsonb('filters').notNullable().defaultTo('{}'); // property equality filters
    t.decimal('unit_cost', 30, 12); // what one unit costs the seller, for margins
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('billable_metrics');
}
