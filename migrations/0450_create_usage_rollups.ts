import type { Knex } from 'knex';

/**
 * Running totals of usage (issue 12, docs/usage-events.md "Rollups"), so real-time reads never scan raw events.
 *
 * - usage_rollup_windows: a customer's [period_start, period_end) whose totals are kept (registered on first read).
 * - usage_rollup_window_metrics: which metrics of a window were seeded from raw events; ingestion adds to a
 *   metric's totals only once it is seeded, so a total never misses the events stored before it existed.
 * - usage_rollups: per window, metric and dimension key ('' when the metric has no dimensions) the running
 *   count, sum, max, latest and distinct count, updated in the statement that stores the events.
 * - usage_rollup_distinct_values: the exact distinct set behind a unique_count total.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('usage_rollup_windows', (t) => {
    t.bigIncrements('id');
    t.uuid('customer_id').notNullable().references('customers.id');
    t.timestamp('period_start', { useTz: true }).notNullable();
    t.timestamp('period_end', { useTz: true }).notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.unique(['customer_id', 'period_start', 'period_end']);
    // Ingestion finds the windows an event falls in by customer and time.
    t.index(['customer_id', 'period_end']);
  });
  await db.schema.createTable('usage_rollup_window_metrics', (t) => {
    t.bigInteger('window_id').notNullable().references('usage_rollup_windows.id');
    t.uuid('metric_id').notNullable().references('billable_metrics.id');
    t.timestamp('seeded_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.primary(['window_id', 'metric_id']);
  });
  await db.schema.createTable('usage_rollups', (t) => {
    t.bigInteger('window_id').notNullable().references('usage_rollup_windows.id');
    t.uuid('metric_id').notNullable().references('billable_metrics.id');
    t.text('dimension_key').notNullable().defaultTo('');
    t.bigInteger('event_count').notNullable().defaultTo(0);
    t.bigInteger('value_count').notNullable().defaultTo(0); // events whose property reads as a number
    t.specificType('value_sum', 'numeric').notNullable().defaultTo(0);
    t.specificType('value_max', 'numeric');
    t.bigInteger('distinct_count').notNullable().defaultTo(0);
    t.timestamp('latest_at', { useTz: true });
    t.bigInteger('latest_event_row_id');
    t.specificType('latest_value', 'numeric');
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.primary(['window_id', 'metric_id', 'dimension_key']);
  });
  await db.schema.createTable('usage_rollup_distinct_values', (t) => {
    t.bigInteger('window_id').notNullable().references('usage_rollup_windows.id');
    t.uuid('metric_id').notNullable().references('billable_metrics.id');
    t.text('dimension_key').notNullable().defaultTo('');
    t.text('value').notNullable();
    t.primary(['window_id', 'metric_id', 'dimension_key', 'value']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('usage_rollup_distinct_values');
  await db.schema.dropTable('usage_rollups');
  await db.schema.dropTable('usage_rollup_window_metrics');
  await db.schema.dropTable('usage_rollup_windows');
}
