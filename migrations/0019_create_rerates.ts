import type { Knex } from 'knex';

/**
 * Manual re-rating requests: what finance asked (reason, corrected plan, late usage), what the system proposed
 * (difference lines), who decided, and the adjustment invoice or credit note that carried it out.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('rerates', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.uuid('invoice_id').notNullable().references('invoices.id').index();
    t.uuid('subscription_id').notNullable().references('subscriptions.id');
    t.uuid('customer_id').notNullable().references('customers.id');
    t.text('status').notNullable(); // computing | proposed | nothing_to_do | approved | rejected | finalized | expired
    t.text('requested_by').notNullable();
    t.text('reason').notNullable();
    t.uuid('corrected_plan_id').references('plans.id');
    t.boolean('include_late_usage').notNullable().defaultTo(false);
    t.jsonb('proposal'); // { usagePeriod, planId, lines: [...], total, outcome: adjustment | credit | none }
    t.text('decided_by');
    t.text('decision_reason');
    t.timestamp('decided_at', { useTz: true });
    t.uuid('result_invoice_id').references('invoices.id');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('rerates');
}
