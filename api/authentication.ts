/** API keys: who a request is. Which routes a key's role may call is api/access.ts's job. */
import type { Request, Response } from 'express';
import type { Database } from '../store/database';
import { ApiKeyRow, findApiKeyByPrefix, prefixOf, secretMatches, touchApiKey } from '../store/api-keys';
import { ApiProblem } from './problem';

export interface AuthenticatorOptions {
  /** How long a looked-up key is trusted without asking Postgres again (revocations by other processes wait this long). */
  readonly cacheTtlMs?: number;
  /** last_used_at is written at most this often per key. */
  readonly touchIntervalMs?: number;
}

/** Finds keys by their public prefix (cached briefly), then compares the secret's hash in constant time. */
export class ApiKeyAuthenticator {
  private readonly cache = new Map<string, { row: ApiKeyRow; loadedAt: number }>();
  private readonly cacheTtlMs: number;
  private readonly touchIntervalMs: number;

  constructor(
    private readonly db: Database,
    options: AuthenticatorOptions = {},
  ) {
    this.cacheTtlMs = options.cacheTtlMs ?? 5_000;
    this.touchIntervalMs = options.touchIntervalMs ?? 60_000;
  }

  /** The key's row when the secret matches, whatever its state (revoked, expired); undefined otherwise. */
  async verify(key: string): Promise<ApiKeyRow | undefined> {
    const prefix = prefixOf(key);
    if (!prefix) return undefined;
    const row = await this.load(prefix);
    return row && secretMatches(key, row) ? row : undefined;
  }

  /** Forgets a key at once (after a revocation in this process). */
  invalidate(prefix: string): void {
    this.cache.delete(prefix);
  }

  private async load(prefix: string): Promise<ApiKeyRow | undefined> {
    const now = Date.now();
    const cached = this.cache.get(prefix);
    if (cached && now - cached.loadedAt < this.cacheTtlMs) return cached.row;
    const row = await findApiKeyByPrefix(this.db, prefix);
    if (!row) {
      this.cache.delete(prefix);
      return undefined;
    }
    if (!row.revoked_at && (!row.last_used_at || now - row.last_used_at.getTime() > this.touchIntervalMs)) {
      await touchApiKey(this.db, row.id, new Date(now));
    }
    this.cache.set(prefix, { row, loadedAt: now });
    return row;
  }
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

function unauthenticated(res: Response, code: 'unauthenticated' | 'api_key_revoked' | 'api_key_expired', detail: string): ApiProblem {
  res.setHeader('WWW-Authenticate', `Bearer realm="meterloop"${code === 'unauthenticated' ? '' : ', error="invalid_token"'}`);
  return new ApiProblem(code, detail);
}

/**
 * The usable API key a request presents as `Authorization: Bearer <key>`; otherwise throws the 401 problem (with
 * `WWW-Authenticate`). `now` (epoch ms) is the clock expiry is judged by.
 */
export async function presentedApiKey(req: Request, res: Response, authenticator: ApiKeyAuthenticator, now: () => number = Date.now): Promise<ApiKeyRow> {
  const header = req.header('authorization');
  if (!header) throw unauthenticated(res, 'unauthenticated', 'send an API key: "Authorization: Bearer <key>"');
  const key = BEARER.exec(header)?.[1];
  const row = key ? await authenticator.verify(key) : undefined;
  if (!row) throw unauthenticated(res, 'unauthenticated', 'the API key is not valid');
  if (row.revoked_at) throw unauthenticated(res, 'api_key_revoked', `API key ${row.prefix} was revoked at ${row.revoked_at.toISOString()}`);
  if (row.expires_at && row.expires_at.getTime() <= now()) {
    throw unauthenticated(res, 'api_key_expired', `API key ${row.prefix} expired at ${row.expires_at.toISOString()}`);
  }
  return row;
}
