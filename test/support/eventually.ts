/**
 * The one polling helper of the tests: for conditions that come true in another process or on a real server
 * (a worker, a dev server, a dispatcher loop), where there is no clock the test could move instead.
 */
export interface EventuallyOptions {
  /** Give up after this long; default 30 s. */
  readonly timeoutMs?: number;
  /** Pause between probes; default 250 ms. */
  readonly intervalMs?: number;
}

/**
 * Calls `probe` until it returns something other than undefined, null or false, and returns that. After the
 * deadline it throws, naming `what` it waited for; pass a function to say how far it got (called only then).
 * A probe that throws ends the wait with that error: catch inside the probe what is expected to fail for a while.
 */
export async function eventually<T>(
  probe: () => Promise<T | undefined | null | false>,
  what: string | (() => string),
  { timeoutMs = 30_000, intervalMs = 250 }: EventuallyOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
