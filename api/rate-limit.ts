import type { RequestHandler } from 'express';
import { accessOf } from './access';
import { ApiProblem } from './problem';

export interface RateLimitOptions {
  /** Sustained requests per second per API key. */
  readonly perSecond: number;
  /** Bucket size: how many requests a key may send at once after being idle. Defaults to `perSecond`. */
  readonly burst?: number;
}

/**
 * The defaults are generous on purpose (a guard against a runaway client, not a quota): RATE_LIMIT_PER_SECOND
 * (default 10000) and RATE_LIMIT_BURST (default: the per-second rate). RATE_LIMIT_PER_SECOND=0 turns it off.
 */
export function rateLimitFromEnv(env: NodeJS.ProcessEnv = process.env): RateLimitOptions | false {
  const perSecond = env.RATE_LIMIT_PER_SECOND === undefined ? 10_000 : Number(env.RATE_LIMIT_PER_SECOND);
  if (!Number.isFinite(perSecond) || perSecond < 0) throw new Error(`RATE_LIMIT_PER_SECOND must be a non-negative number, got ${env.RATE_LIMIT_PER_SECOND}`);
  if (perSecond === 0) return false;
  const burst = env.RATE_LIMIT_BURST === undefined ? perSecond : Number(env.RATE_LIMIT_BURST);
  if (!Number.isFinite(burst) || burst < 1) throw new Error(`RATE_LIMIT_BURST must be at least 1, got ${env.RATE_LIMIT_BURST}`);
  return { perSecond, burst };
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * A token bucket per API key, in this process's memory: each request takes a token, tokens refill at `perSecond`
 * up to `burst`. With several API processes each enforces its own bucket (the effective limit is n times higher).
 */
export class TokenBucketLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly burst: number;

  constructor(
    private readonly options: RateLimitOptions,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.burst = options.burst ?? options.perSecond;
  }

  /** 0 when the request may go ahead (a token is taken), else the seconds until a token is available. */
  take(subject: string): number {
    const now = this.clock();
    const bucket = this.buckets.get(subject) ?? { tokens: this.burst, updatedAt: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * this.options.perSecond);
    bucket.updatedAt = now;
    this.buckets.set(subject, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return (1 - bucket.tokens) / this.options.perSecond;
  }
}

/** After authentication: throttles per key; public routes and unauthenticated requests never get here with a key. */
export function rateLimit(limiter: TokenBucketLimiter): RequestHandler {
  return (_req, res, next) => {
    const principal = accessOf(res)?.principal;
    if (!principal) return next();
    const waitSeconds = limiter.take(principal.keyId);
    if (waitSeconds === 0) return next();
    res.setHeader('Retry-After', String(Math.max(1, Math.ceil(waitSeconds))));
    return next(new ApiProblem('rate_limited', `too many requests for this API key; retry after ${Math.max(1, Math.ceil(waitSeconds))} s`));
  };
}
