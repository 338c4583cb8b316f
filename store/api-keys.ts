import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import { writeAudit } from './outbox';

/** Who a key speaks for. `admin` may do everything; see api/access.ts for what each role may call. */
export const ROLES = ['admin', 'finance', 'app', 'monitoring'] as const;
export type Role = (typeof ROLES)[number];
/** A customer usage token: reads one customer's subscriptions' usage, nothing else. */
export type KeyRole = Role | 'customer_usage';

export interface ApiKeyRow {
  id: string;
  name: string;
  role: KeyRole;
  prefix: string;
  secret_hash: string;
  customer_id: string | null;
  created_by: string | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  created_at: Date;
}

/**
 * A key reads `ml_<prefix>_<secret>`: `prefix` (12 base62 characters, ~71 bits) is public and unique, so the row is
 * found by it; `secret` is 32 random bytes (256 bits). We store SHA-256 of the whole key. A slow password hash
 * (bcrypt, argon2) protects low-entropy secrets against guessing; with 256 random bits there is nothing to guess, so
 * a fast hash is enough, and it keeps a per-request check in the microseconds.
 */
const KEY_PATTERN = /^ml_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomBase62(length: number): string {
  // 248 = 4 * 62: rejecting bytes >= 248 keeps every character equally likely.
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += BASE62[byte % 62];
    }
  }
  return out;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function generateApiKey(): { key: string; prefix: string; secretHash: string } {
  const prefix = randomBase62(12);
  const key = `ml_${prefix}_${randomBytes(32).toString('base64url')}`;
  return { key, prefix, secretHash: hashApiKey(key) };
}

/** The public prefix of a well-formed key, or undefined for anything that cannot be a key. */
export function prefixOf(key: string): string | undefined {
  return KEY_PATTERN.exec(key)?.[1];
}

/** Constant-time comparison of the presented key's hash with the stored one. */
export function secretMatches(key: string, row: Pick<ApiKeyRow, 'secret_hash'>): boolean {
  const presented = Buffer.from(hashApiKey(key), 'hex');
  const stored = Buffer.from(row.secret_hash, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}

export interface NewApiKey {
  readonly name: string;
  readonly role: KeyRole;
  readonly customerId?: string | null;
  readonly createdBy?: string | null;
  readonly expiresAt?: Date | null;
}

/** Creates a key; the returned `key` is the only time the secret exists outside the caller's hands. */
export async function createApiKey(db: Knex | Knex.Transaction, input: NewApiKey): Promise<{ key: string; row: ApiKeyRow }> {
  const { key, prefix, secretHash } = generateApiKey();
  const [row] = await db<ApiKeyRow>('api_keys')
    .insert({
      name: input.name,
      role: input.role,
      prefix,
      secret_hash: secretHash,
      customer_id: input.customerId ?? null,
      created_by: input.createdBy ?? null,
      expires_at: input.expiresAt ?? null,
    })
    .returning('*');
  return { key, row };
}

/** Who asked for a key change, for the audit log written with it. */
export interface KeyAudit {
  readonly actor: string;
  readonly details?: Record<string, unknown>;
  readonly reason?: string | null;
}

/** Creates a key and its `api_key.created` audit record in one transaction. */
export async function createAuditedApiKey(db: Knex, input: NewApiKey, audit: KeyAudit): Promise<{ key: string; row: ApiKeyRow }> {
  return db.transaction(async (trx) => {
    const made = await createApiKey(trx, input);
    await writeAudit(trx, { actor: audit.actor, action: 'api_key.created', subjectType: 'api_key', subjectId: made.row.id, details: audit.details });
    return made;
  });
}

/** Revokes a key and writes its `api_key.revoked` audit record in one transaction; undefined when there is no such key. */
export async function revokeAuditedApiKey(db: Knex, id: string, at: Date, audit: KeyAudit): Promise<ApiKeyRow | undefined> {
  return db.transaction(async (trx) => {
    const revoked = await revokeApiKey(trx, id, at);
    if (!revoked) return undefined;
    await writeAudit(trx, { actor: audit.actor, action: 'api_key.revoked', subjectType: 'api_key', subjectId: revoked.id, reason: audit.reason ?? null });
    return revoked;
  });
}

/** Deletes customer usage tokens that expired before `before` (tokens are minted per page view and pile up). */
export async function deleteUsageTokensExpiredBefore(db: Knex, before: Date): Promise<void> {
  await db<ApiKeyRow>('api_keys').where({ role: 'customer_usage' }).andWhere('expires_at', '<', before).delete();
}

export async function findApiKeyByPrefix(db: Knex, prefix: string): Promise<ApiKeyRow | undefined> {
  return db<ApiKeyRow>('api_keys').where({ prefix }).first();
}

export async function listApiKeys(db: Knex): Promise<ApiKeyRow[]> {
  return db<ApiKeyRow>('api_keys').orderBy('created_at', 'desc').orderBy('id');
}

/** Revokes a key (idempotent: a second revoke keeps the first time). Undefined when there is no such key. */
export async function revokeApiKey(db: Knex | Knex.Transaction, id: string, at: Date): Promise<ApiKeyRow | undefined> {
  const [row] = await db<ApiKeyRow>('api_keys').where({ id }).update({ revoked_at: db.raw('COALESCE(revoked_at, ?)', [at]) as never }).returning('*');
  return row;
}

export async function touchApiKey(db: Knex, id: string, at: Date): Promise<void> {
  await db('api_keys').where({ id }).update({ last_used_at: at });
}

export async function hasActiveAdminKey(db: Knex, now: Date): Promise<boolean> {
  const row = await db<ApiKeyRow>('api_keys')
    .where({ role: 'admin' })
    .whereNull('revoked_at')
    .andWhere((q) => q.whereNull('expires_at').orWhere('expires_at', '>', now))
    .first('id');
  return row !== undefined;
}
