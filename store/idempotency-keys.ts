import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';

export interface IdempotencyKeyRow {
  api_key_id: string;
  key: string;
  request_hash: string;
  claim_id: string;
  response_status: number | null;
  response_body: string | null;
  created_at: Date;
  completed_at: Date | null;
  /** Given back for a retry of the same request (migration 0610); the row keeps its hash until it expires. */
  released_at: Date | null;
}

export interface IdempotencyClaim {
  readonly apiKeyId: string;
  readonly key: string;
  readonly claimId: string;
}

/**
 * Claims (apiKeyId, key) for a request: the claim when this call inserted the row (the caller runs the request),
 * undefined when a row exists (a repeat, a reuse, or a request still running).
 */
export async function claimIdempotencyKey(db: Knex, apiKeyId: string, key: string, requestHash: string): Promise<IdempotencyClaim | undefined> {
  const claimId = randomUUID();
  const inserted = await db('idempotency_keys')
    .insert({ api_key_id: apiKeyId, key, request_hash: requestHash, claim_id: claimId })
    .onConflict(['api_key_id', 'key'])
    .ignore()
    .returning('key');
  return inserted.length === 1 ? { apiKeyId, key, claimId } : undefined;
}

export async function findIdempotencyKey(db: Knex, apiKeyId: string, key: string): Promise<IdempotencyKeyRow | undefined> {
  return db<IdempotencyKeyRow>('idempotency_keys').where({ api_key_id: apiKeyId, key }).first();
}

/** Stores the response the claim's request gave; replays return it from now on. */
export async function completeIdempotencyKey(db: Knex, claim: IdempotencyClaim, status: number, body: string): Promise<void> {
  await db('idempotency_keys')
    .where({ api_key_id: claim.apiKeyId, key: claim.key, claim_id: claim.claimId })
    .whereNull('completed_at')
    .update({ response_status: status, response_body: body, completed_at: db.fn.now() });
}

/**
 * Gives the key back to a retry of the same request (its answer is not final: a failure, or work a repeat moves
 * on), which then runs afresh. The row stays with its request hash, so the key for a different request is still
 * refused: what the first run committed under identities derived from the key is that request's alone.
 */
export async function releaseIdempotencyKey(db: Knex, claim: IdempotencyClaim): Promise<void> {
  await db('idempotency_keys')
    .where({ api_key_id: claim.apiKeyId, key: claim.key, claim_id: claim.claimId })
    .whereNull('completed_at')
    .update({ released_at: db.fn.now() });
}

/**
 * Takes over a released key for a retry of the same request, a claim whose request has been running for longer
 * than `staleAfterMs` (its process most likely died), or a completed or released key older than `expireAfterMs`
 * (then for any request). The claim when the caller now owns the key.
 */
export async function reclaimIdempotencyKey(
  db: Knex,
  row: IdempotencyKeyRow,
  requestHash: string,
  options: { staleAfterMs: number; expireAfterMs: number },
): Promise<IdempotencyClaim | undefined> {
  const age = Date.now() - row.created_at.getTime();
  const expired = age > options.expireAfterMs;
  const reclaimable = row.completed_at ? expired : row.released_at ? expired || row.request_hash === requestHash : age > options.staleAfterMs;
  if (!reclaimable) return undefined;
  const claimId = randomUUID();
  // Compare-and-set on the old claim id: of two takers, one wins.
  const updated = await db('idempotency_keys')
    .where({ api_key_id: row.api_key_id, key: row.key, claim_id: row.claim_id })
    .update({ request_hash: requestHash, claim_id: claimId, response_status: null, response_body: null, completed_at: null, released_at: null, created_at: db.fn.now() });
  return updated === 1 ? { apiKeyId: row.api_key_id, key: row.key, claimId } : undefined;
}

/** Deletes completed and released keys older than `olderThanMs`; returns how many. */
export async function deleteExpiredIdempotencyKeys(db: Knex, olderThanMs: number): Promise<number> {
  return db('idempotency_keys')
    .where((settled) => settled.whereNotNull('completed_at').orWhereNotNull('released_at'))
    .andWhere('created_at', '<', new Date(Date.now() - olderThanMs))
    .delete();
}
