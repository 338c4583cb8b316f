import type { Knex } from 'knex';

/** Plans are immutable versions: changing a price creates version n+1; subscriptions point at one version. */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('plans', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.text('code').notNullable();
    t.integer('version').notNullable();
    t.text('name').notNullable();
    t.string('currency', 3).notNullable();
    t.text('billing_interval').notNullable(); // ISO-8601 duration: P1M, P1Y, PT1M
    t.text('trial_period'); // ISO-8601 duration or null
    t.decimal('flat_fee', 30, 12).notNullable().defaultTo(0); // billed in advance each period
    t.jsonb('charges').notNullable().defaultTo('[]'); // usage charges (price models), rated by domain/
    t.jsonb('settings').notNullable().defaultTo('{}'); // grace window, dunning, retention...
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.unique(['code', 'version']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('plans');
}
