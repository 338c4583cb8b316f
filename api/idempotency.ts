/**
 * Idempotency-Key for every POST: the first answer to a request (status and body) is stored per API key and
 * replayed for a repeat within 24 h; the same key with a different request is refused (409 idempotency_key_reused);
 * a repeat that arrives while the first is still running waits for it briefly, then gets 409
 * idempotency_request_in_progress.
 *
 * Every answer the request itself decided is stored: 200, 201, 202 (accepted work, e.g. a re-rating started: a
 * repeat must not start it again) and 4xx (the request is invalid, or the subscription refused it: the same request
 * gets the same refusal, and a corrected one needs a new key). Not stored, so that a retry with the same key runs
 * afresh: 5xx and 503 (nothing was decided), 408 and 429 (the request was never looked at), and an answer its route
 * marks as resuming work that only a repeat moves on (answerResumesOnRepeat: a refund the gateway has not
 * confirmed, which the repeat completes, idempotently by its own key). Such a key is given back to the same
 * request only: a 503 may follow a commit (a subscription row whose workflow did not start), and a different request
 * with the key would otherwise find that row by the id the key derives and be answered with it.
 *
 * Keys are scoped per API key, and so is every identity derived from one (a Temporal update id, a re-rating id):
 * see scopedRequestId.
 */
import { createHash } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { Database } from '../store/database';
import {
  claimIdempotencyKey,
  completeIdempotencyKey,
  deleteExpiredIdempotencyKeys,
  findIdempotencyKey,
  IdempotencyClaim,
  IdempotencyKeyRow,
  reclaimIdempotencyKey,
  releaseIdempotencyKey,
} from '../store/idempotency-keys';
import { accessOf } from './access';
import { ApiProblem } from './problem';

export interface IdempotencyOptions {
  /** How long a repeat waits for the first request to finish before answering 409 in progress. */
  readonly waitMs?: number;
  /** A claim older than this whose request never finished (a crashed process) is taken over. */
  readonly staleAfterMs?: number;
  /** Stored responses are replayed for this long; then the key may be used afresh. */
  readonly expireAfterMs?: number;
  readonly log?: (entry: Record<string, unknown>) => void;
}

/** Printable ASCII, 1 to 200 characters (a UUID is the usual choice). */
const KEY = /^[\x21-\x7e]{1,200}$/;
const HOUR = 3_600_000;

/** The same JSON value whatever the key order or whitespace: objects' keys sorted. Depth is bounded upstream. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/**
 * The refusal for a request whose Idempotency-Key already names something else: a route that finds what an earlier
 * request created under the identity its key derives (after the key expired, or any way the check above missed)
 * answers with it only when it is what this request asks for.
 */
export function keyNamesAnotherRequest(key: string | undefined, what: string): ApiProblem {
  return new ApiProblem('idempotency_key_reused', `Idempotency-Key ${key ?? ''} already named ${what}; use a new key`);
}

export function requestHash(method: string, url: string, body: unknown): string {
  return createHash('sha256').update(`${method} ${url}\n${canonicalJson(body)}`).digest('hex');
}

/** Final answers (see the header): every 2xx and every 4xx but a timeout or a rate limit. */
export const storable = (status: number): boolean => (status >= 200 && status < 300) || (status >= 400 && status < 500 && status !== 408 && status !== 429);

/**
 * The identity of whatever a request starts (a workflow update, a re-rating), derived from the caller's key and
 * its Idempotency-Key: a repeat names the same thing, and another API key reusing the same Idempotency-Key names
 * its own. Undefined without an Idempotency-Key (the caller then lets each request be new).
 */
export function scopedRequestId(apiKeyId: string | undefined, operation: string, idempotencyKey: string | undefined): string | undefined {
  return idempotencyKey === undefined ? undefined : `${apiKeyId ?? 'anonymous'}:${operation}:${idempotencyKey}`;
}

/**
 * The id of the workflow update a request makes: its scoped request id and its request's hash. Temporal answers an
 * update id it knows with that update's outcome, so a retry of the request gets the first answer, and the same
 * Idempotency-Key for another request (once the key has expired, when it may name a new request) makes its own
 * update instead of being handed the first one's outcome.
 */
export function requestUpdateId(req: Request, apiKeyId: string | undefined, operation: string): string | undefined {
  const requestId = scopedRequestId(apiKeyId, operation, req.header('Idempotency-Key'));
  return requestId && `${requestId}:${requestHash(req.method, req.originalUrl, req.body).slice(0, 16)}`;
}

/** A UUID that is a pure function of a scoped request id (for tables keyed by uuid). */
export function uuidFromRequestId(requestId: string): string {
  const hex = createHash('sha256').update(requestId).digest('hex');
  // Version 8 (custom) layout: the version nibble and the RFC 4122 variant bits, the rest from the hash.
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

const RESUMES_ON_REPEAT = 'idempotencyResumesOnRepeat';

/**
 * For a route whose answer reports pending work that a repeat of the same request moves on (and that is itself
 * idempotent per request): the answer is not stored, so the repeat runs the route again instead of a replay.
 */
export function answerResumesOnRepeat(res: Response): void {
  res.locals[RESUMES_ON_REPEAT] = true;
}

const SECRET_FIELDS = 'idempotencySecretFields';

/**
 * For a route whose answer carries a secret shown once (a new API key, a usage token): the answer is stored with
 * those top-level fields set to null. Stored whole, the idempotency table (kept 24 hours) held the credential in
 * clear, where the key table holds only its hash. A repeat is answered with that document (the same key's id, no
 * secret: it was shown once); a client that lost the first answer revokes the key and creates another.
 */
export function answerHoldsSecrets(res: Response, fields: readonly string[]): void {
  res.locals[SECRET_FIELDS] = fields;
}

/** The answer as stored: the fields a route named secret set to null (`answerHoldsSecrets`). */
function storedBody(res: Response, text: string): string {
  const fields = res.locals[SECRET_FIELDS] as readonly string[] | undefined;
  if (!fields) return text;
  const document = JSON.parse(text) as Record<string, unknown>;
  for (const field of fields) if (field in document) document[field] = null;
  return JSON.stringify(document);
}

const RETRIES_UNFINISHED = 'idempotencyRetriesUnfinished';

/**
 * True when this request is a retry, under the same Idempotency-Key, of the same request whose earlier attempt gave
 * no final answer (a 5xx gave the key back, or its process died): that attempt may have committed its change and
 * then failed before a side effect that follows the commit. A route whose side effect runs only when its change is
 * new (the dunning hook of a new payment method) owes it again on such a retry.
 */
export function retriesUnfinishedRequest(res: Response): boolean {
  return res.locals[RETRIES_UNFINISHED] === true;
}

function replay(res: Response, row: IdempotencyKeyRow): void {
  res.status(row.response_status!).setHeader('Idempotent-Replayed', 'true');
  // Every 4xx the API stores is a problem document (api/problem.ts): replayed with the type it was first sent with.
  res.type(row.response_status! >= 400 ? 'application/problem+json' : 'application/json').send(row.response_body);
}

export function idempotency(db: Database, options: IdempotencyOptions = {}): RequestHandler {
  const waitMs = options.waitMs ?? 2_000;
  const staleAfterMs = options.staleAfterMs ?? 5 * 60_000;
  const expireAfterMs = options.expireAfterMs ?? 24 * HOUR;
  const log = options.log ?? (() => undefined);
  let lastSweep = Date.now();

  /** Holds the response back until it is recorded, so a repeat sent right after it arrives finds it. */
  function recordResponse(res: Response, claim: IdempotencyClaim): void {
    const send = res.send.bind(res);
    let recorded = false;
    res.send = (body?: unknown) => {
      if (recorded) return send(body);
      recorded = true;
      const status = res.statusCode;
      const text = typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : JSON.stringify(body ?? null);
      // An answer that says when to try again (Retry-After: 409 period_opening, 429) is no final answer: the same
      // request with the same key is carried out later, instead of replaying the refusal until the key expires.
      const final = storable(status) && !res.hasHeader('Retry-After') && res.locals[RESUMES_ON_REPEAT] !== true;
      const write = final ? completeIdempotencyKey(db, claim, status, storedBody(res, text)) : releaseIdempotencyKey(db, claim);
      void write
        .catch((error: unknown) => log({ level: 'error', msg: 'could not record an idempotent response', key: claim.key, error: String(error) }))
        .finally(() => send(body));
      return res;
    };
  }

  return async (req, res, next) => {
    if (req.method !== 'POST') return next();
    const key = req.header('idempotency-key');
    const principal = accessOf(res)?.principal;
    if (key === undefined || !principal) return next();
    if (!KEY.test(key)) {
      throw new ApiProblem('validation_failed', 'the Idempotency-Key header must be 1 to 200 printable ASCII characters', [
        { path: 'Idempotency-Key', message: 'must be 1 to 200 printable ASCII characters' },
      ]);
    }
    const hash = requestHash(req.method, req.originalUrl, req.body);
    const deadline = Date.now() + waitMs;

    let claim = await claimIdempotencyKey(db, principal.keyId, key, hash);
    while (!claim) {
      const read = await findIdempotencyKey(db, principal.keyId, key);
      if (read) {
        claim = await reclaimIdempotencyKey(db, read, hash, { staleAfterMs, expireAfterMs });
        if (claim) {
          if (read.request_hash === hash && !read.completed_at) res.locals[RETRIES_UNFINISHED] = true;
          break;
        }
        // Judged by the row as it is now, not as it was read before the takeover attempt: copies of one request sent
        // at once on an expired (or released, or stale) key all try to take it over, one wins and runs, and the
        // others, judging by their earlier read, replayed the expired answer (another day's request) or refused the
        // request now running as a reuse. Gone meanwhile (swept): claim afresh below.
        const row = await findIdempotencyKey(db, principal.keyId, key);
        if (!row) {
          claim = await claimIdempotencyKey(db, principal.keyId, key, hash);
          continue;
        }
        if (row.claim_id !== read.claim_id) {
          // Taken over since the read: judge that row at the next turn (replay, wait, or refuse a different request).
          claim = undefined;
          continue;
        }
        if (row.request_hash !== hash) {
          throw new ApiProblem('idempotency_key_reused', `Idempotency-Key ${key} was used for a different request; use a new key`);
        }
        if (row.completed_at) return replay(res, row);
        if (Date.now() >= deadline) {
          res.setHeader('Retry-After', '1');
          throw new ApiProblem('idempotency_request_in_progress', `a request with Idempotency-Key ${key} is still running; retry shortly`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // The row was gone (swept after it expired) or we waited: try to claim again.
      claim = await claimIdempotencyKey(db, principal.keyId, key, hash);
    }

    if (Date.now() - lastSweep > HOUR) {
      lastSweep = Date.now();
      void deleteExpiredIdempotencyKeys(db, expireAfterMs).catch((error: unknown) => log({ level: 'warn', msg: 'idempotency key sweep failed', error: String(error) }));
    }
    recordResponse(res, claim);
    return next();
  };
}
