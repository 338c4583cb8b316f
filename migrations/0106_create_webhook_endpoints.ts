import type { Knex } from 'knex';

/** Where customer-facing events are POSTed, signed with the endpoint's secret. */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('webhook_endpoints', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.text('url').notNullable();
    t.text('secret').notNullable(); // whsec_...: HMAC-SHA256 key, shown once at creation
    t.specificType('event_types', 'text[]').notNullable(); // exact types, "prefix.*" or "*"
    t.boolean('enabled').notNullable().defaultTo(true);
    t.text('description');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('webhook_endpoints');
}
