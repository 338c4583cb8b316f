import type { Knex } from 'knex';

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('audit_log', (t) => {
    t.bigIncrements('id');
    t.text('actor').notNullable(); // api key name, 'workflow', 'system'
    t.text('action').notNullable(); // subscription.created, subscription.cancel_requested...
    t.text('subject_type').notNullable();
    t.text('subject_id').notNullable();
    t.text('reason');
    t.jsonb('details').notNullable().defaultTo('{}');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.index(['subject_type', 'subject_id']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('audit_log');
}
