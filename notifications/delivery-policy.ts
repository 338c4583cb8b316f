/**
 * When a failed delivery (webhook or email) is tried again, and when it is given up: exponential backoff with
 * jitter, a cap, and a fixed number of attempts. The schedule itself is stored as next_attempt_at on the row.
 */

export interface RetryPolicy {
  /** Wait after the first failed attempt; doubles after each further failure. */
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** Attempts in all, the first included; after the last failure the delivery is `failed`. */
  readonly maxAttempts: number;
  /** Spread of each wait, +/- this fraction (0.1 = 10%), so retries of many deliveries do not fall in step. */
  readonly jitter: number;
}

/** 30 s, 1 m, 2 m, ... capped at 6 h; 12 attempts span about 17 hours. */
export const DEFAULT_WEBHOOK_RETRY: RetryPolicy = { initialBackoffMs: 30_000, maxBackoffMs: 6 * 3_600_000, maxAttempts: 12, jitter: 0.1 };
export const DEFAULT_EMAIL_RETRY: RetryPolicy = { initialBackoffMs: 60_000, maxBackoffMs: 3_600_000, maxAttempts: 8, jitter: 0.1 };

/** A webhook request that has not answered within this is a failed attempt. */
export const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000;

export type WebhookDeliveryPolicy = RetryPolicy & { readonly timeoutMs: number };

/** The defaults with the caller's overrides on top. */
export function webhookDeliveryPolicy(overrides: Partial<WebhookDeliveryPolicy> = {}): WebhookDeliveryPolicy {
  return { ...DEFAULT_WEBHOOK_RETRY, timeoutMs: DEFAULT_WEBHOOK_TIMEOUT_MS, ...overrides };
}

export function emailDeliveryPolicy(overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  return { ...DEFAULT_EMAIL_RETRY, ...overrides };
}

/** A claimed row stays ours for longer than one request can take; after that it may be retried elsewhere. */
export function claimLeaseMs(policy: WebhookDeliveryPolicy): number {
  return policy.timeoutMs * 2 + 30_000;
}

/** The wait after failed attempt number `attempt` (1-based): initial * 2^(attempt-1), capped, with jitter. */
export function retryDelayMs(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const base = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** Math.max(0, attempt - 1));
  return Math.max(0, Math.round(base * (1 + policy.jitter * (random() * 2 - 1))));
}

export type DeliveryOutcome = 'delivered' | 'retry' | 'failed';

/**
 * What follows attempt number `attempt`: done, another try, or failed for good, either because it was the last
 * attempt or because no retry can succeed (`retryable` false, e.g. the endpoint was disabled).
 */
export function attemptOutcome(succeeded: boolean, attempt: number, policy: RetryPolicy, retryable = true): DeliveryOutcome {
  if (succeeded) return 'delivered';
  return !retryable || attempt >= policy.maxAttempts ? 'failed' : 'retry';
}
