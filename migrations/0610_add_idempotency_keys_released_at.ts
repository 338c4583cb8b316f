import type { Knex } from 'knex';

/**
 * A key whose request failed (5xx), was never looked at (408, 429) or left work that only a repeat moves on is
 * given back for a retry of the same request; `released_at` keeps its row and `request_hash` meanwhile, so that the
 * same key for a different request is still refused. Before, the row was deleted, and a different request with the
 * key found what the first one had committed under identities derived from the key (a subscription, a top-up, a
 * re-rating, a workflow update) and was answered with it.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('idempotency_keys', (t) => {
    t.timestamp('released_at', { useTz: true });
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('idempotency_keys', (t) => {
    t.dropColumn('released_at');
  });
}
