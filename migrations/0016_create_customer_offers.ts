import type { Knex } from 'knex';

/** Retention and win-back offers: who got which, when, and the answer. A customer gets one retention offer a year. */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('customer_offers', (t) => {
    t.bigIncrements('id');
    t.uuid('customer_id').notNullable().references('customers.id');
    t.uuid('subscription_id').notNullable().references('subscriptions.id');
    t.text('kind').notNullable(); // retention | win_back
    t.jsonb('terms').notNullable();
    t.timestamp('offered_at', { useTz: true }).notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.text('answer'); // accepted | declined | expired
    t.timestamp('answered_at', { useTz: true });
    t.unique(['subscription_id', 'kind', 'offered_at']);
    t.index(['customer_id', 'kind', 'offered_at']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('customer_offers');
}
