import type { Knex } from 'knex';

/**
 * The first response to a POST carrying an Idempotency-Key, per API key, replayed for repeats of the same request.
 * `request_hash` tells a repeat from a reuse of the key for a different request; `completed_at` null means the
 * first request is still running.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('idempotency_keys', (t) => {
    t.uuid('api_key_id').notNullable().references('api_keys.id');
    t.text('key').notNullable();
    t.text('request_hash').notNullable(); // SHA-256 of method, path and canonical JSON body
    t.uuid('claim_id').notNullable(); // which run of the request owns the row (a stale claim is taken over)
    t.integer('response_status');
    t.text('response_body'); // the JSON text as first sent (jsonb would reorder keys)
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.timestamp('completed_at', { useTz: true });
    t.primary(['api_key_id', 'key']);
    t.index(['created_at']); // expiry sweeps
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('idempotency_keys');
}
