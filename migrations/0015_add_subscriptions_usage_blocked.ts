import type { Knex } from 'knex';

/** Set while a subscription must not accrue usage (paused under the reject policy, suspended): ingestion refuses it. */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('subscriptions', (t) => {
    t.boolean('usage_blocked').notNullable().defaultTo(false);
  });
  await db.raw('CREATE INDEX subscriptions_usage_blocked_idx ON subscriptions (customer_id) WHERE usage_blocked');
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP INDEX subscriptions_usage_blocked_idx');
  await db.schema.alterTable('subscriptions', (t) => t.dropColumn('usage_blocked'));
}
