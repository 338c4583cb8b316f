import type { Knex } from 'knex';

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('subscriptions', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.uuid('customer_id').notNullable().references('customers.id').index();
    t.uuid('plan_id').notNullable().references('plans.id');
    t.text('status').notNullable(); // mirrors the workflow: scheduled, trialing, active, past_due, canceled...
    t.text('workflow_id').notNullable().unique();
    t.timestamp('start_at', { useTz: true }).notNullable();
    t.timestamp('trial_end', { useTz: true });
    t.timestamp('current_period_start', { useTz: true });
    t.timestamp('current_period_end', { useTz: true });
    t.timestamp('canceled_at', { useTz: true });
    t.text('cancel_reason');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('subscriptions');
}
