/**
 * The fetch the client sends with: an automatic Idempotency-Key on every POST, and bounded retries of answers that
 * say "try again later" (503 and 429), waiting as long as their Retry-After asks (within a cap).
 *
 * One call keeps one Idempotency-Key through all its retries, so the API applies the request at most once however
 * many attempts it takes; a caller that sets its own key keeps it.
 */

export interface RetryOptions {
  /** Retries after the first attempt (default 3); 0 turns retrying off. */
  readonly maxRetries?: number;
  /** The longest wait between attempts, in ms (default 30 s); a longer Retry-After is not waited for: the answer is returned. */
  readonly maxDelayMs?: number;
  /** The wait when the answer has no Retry-After, doubled on each retry (default 500 ms). */
  readonly baseDelayMs?: number;
  /** Statuses worth another attempt (default 429 and 503). */
  readonly retryOn?: readonly number[];
}

export interface RetryingFetchOptions extends RetryOptions {
  /** The fetch to send with (default: the global fetch). */
  readonly fetch?: (request: Request) => Promise<Response>;
  /** Makes new Idempotency-Keys (default: crypto.randomUUID). */
  readonly newIdempotencyKey?: () => string;
  /** Waits (default: setTimeout); tests pass their own to observe the waits. */
  readonly sleep?: (ms: number) => Promise<void>;
}

const DEFAULT_RETRY_ON = [429, 503];

/**
 * The wait a Retry-After header asks for, in ms: delay-seconds or an HTTP date (RFC 9110 section 10.2.3);
 * undefined when absent or unreadable.
 */
export function retryAfterMs(header: string | null, now: number = Date.now()): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export function retryingFetch(options: RetryingFetchOptions = {}): (input: Request) => Promise<Response> {
  const send = options.fetch ?? ((request: Request) => fetch(request));
  const maxRetries = options.maxRetries ?? 3;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  const baseDelayMs = options.baseDelayMs ?? 500;
  const retryOn = options.retryOn ?? DEFAULT_RETRY_ON;
  const newKey = options.newIdempotencyKey ?? (() => globalThis.crypto.randomUUID());
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));

  return async (input) => {
    // Decided once per call: every attempt below is a copy of this request, key included.
    const original = input.method === 'POST' && !input.headers.has('Idempotency-Key') ? withHeader(input, 'Idempotency-Key', newKey()) : input;
    for (let retry = 0; ; retry += 1) {
      const response = await send(retry < maxRetries ? original.clone() : original);
      if (!retryOn.includes(response.status) || retry >= maxRetries) return response;
      const asked = retryAfterMs(response.headers.get('Retry-After'));
      const delay = asked ?? baseDelayMs * 2 ** retry;
      if (delay > maxDelayMs) return response; // the server asks for longer than we wait: let the caller decide
      await response.body?.cancel(); // free the connection before waiting
      await sleep(delay);
    }
  };
}

function withHeader(request: Request, name: string, value: string): Request {
  const headers = new Headers(request.headers);
  headers.set(name, value);
  return new Request(request, { headers });
}
