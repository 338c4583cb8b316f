import type { Knex } from 'knex';

/**
 * Cost tables (docs/pricing.md): what one unit of a metric costs us, per combination of its group_by properties,
 * from `effective_from` until the metric's next table. One table per (metric, effective_from): a table is never
 * edited once stored (invoices were costed with it); a correction is a new table from a later instant.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('metric_cost_tables', (t) => {
    t.bigIncrements('id').primary();
    t.text('metric_code').notNullable().references('code').inTable('billable_metrics');
    t.timestamp('effective_from', { useTz: true }).notNullable();
    // [{ "match": { "model": "large" }, "unitCost": "0.00002" }, ...] as validated by domain/cost-tables.ts
    t.jsonb('entries').notNullable();
    t.text('created_by').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.unique(['metric_code', 'effective_from']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('metric_cost_tables');
}
