import type { Knex } from 'knex';

/**
 * Spending alerts: a customer-set budget per subscription (thresholds in percent), the alerts raised (once per
 * threshold per period, by the unique key), and the hard-cap marker ingestion checks.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('subscriptions', (t) => {
    t.decimal('budget_amount', 30, 12); // customer-set spend budget per period, in the plan's currency
    t.jsonb('alert_thresholds'); // percentages, e.g. ["50","80","100"]
    t.timestamp('usage_capped_until', { useTz: true }); // the plan's hard cap was reached for the period ending then
  });
  await db.raw('CREATE INDEX subscriptions_usage_capped_idx ON subscriptions (customer_id) WHERE usage_capped_until IS NOT NULL');
  await db.schema.createTable('spending_alerts', (t) => {
    t.bigIncrements('id');
    t.uuid('subscription_id').notNullable().references('subscriptions.id');
    t.timestamp('period_start', { useTz: true }).notNullable();
    t.text('basis').notNullable(); // credit_bucket | budget
    t.text('threshold').notNullable(); // percent, as given
    t.decimal('spend', 30, 12).notNullable(); // usage cost when it was raised
    t.decimal('limit_amount', 30, 12).notNullable();
    t.timestamp('raised_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.unique(['subscription_id', 'period_start', 'basis', 'threshold']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('spending_alerts');
  await db.raw('DROP INDEX subscriptions_usage_capped_idx');
  await db.schema.alterTable('subscriptions', (t) => {
    t.dropColumn('usage_capped_until');
    t.dropColumn('alert_thresholds');
    t.dropColumn('budget_amount');
  });
}
