import type { Knex } from 'knex';

/**
 * API keys and customer usage tokens. Only a SHA-256 of the key is stored (the key is shown once, at creation);
 * `prefix` is the key's public, unique lookup part, shown in listings so people can tell keys apart.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('api_keys', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.text('name').notNullable();
    t.text('role').notNullable(); // admin | finance | app | monitoring | customer_usage
    t.text('prefix').notNullable().unique();
    t.text('secret_hash').notNullable(); // hex SHA-256 of the whole key
    t.uuid('customer_id').references('customers.id').index(); // customer_usage tokens only
    t.uuid('created_by').references('api_keys.id'); // null: made by `npm run create-admin-key`
    t.timestamp('expires_at', { useTz: true });
    t.timestamp('revoked_at', { useTz: true });
    t.timestamp('last_used_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
  });
  await db.raw(`ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('admin', 'finance', 'app', 'monitoring', 'customer_usage'))`);
  // A usage token always belongs to one customer; no other key does.
  await db.raw(`ALTER TABLE api_keys ADD CONSTRAINT api_keys_customer_scope_check
    CHECK ((role = 'customer_usage') = (customer_id IS NOT NULL))`);
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('api_keys');
}
