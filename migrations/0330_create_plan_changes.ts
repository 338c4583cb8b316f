import type { Knex } from 'knex';

/**
 * Immediate plan changes, one row per request: the workflow records the change keyed by the request (the
 * update id) before any other side effect, so a retried workflow task reads back the change instant it chose
 * the first time instead of taking a new one from its own clock. The instant is unique per subscription too:
 * the proration invoice is identified by it (invoices_one_per_period), so one instant means one change.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('plan_changes', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.uuid('subscription_id').notNullable().references('subscriptions.id');
    t.text('request_key').notNullable();
    t.timestamp('change_at', { useTz: true, precision: 3 }).notNullable();
    t.uuid('old_plan_id').notNullable().references('plans.id');
    t.uuid('new_plan_id').notNullable().references('plans.id');
    t.text('requested_by').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.unique(['subscription_id', 'request_key']);
    t.unique(['subscription_id', 'change_at']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('plan_changes');
}
