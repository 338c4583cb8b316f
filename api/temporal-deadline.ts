/**
 * Every Temporal call the API makes on behalf of a request has a short gRPC deadline, so a Temporal server (or a
 * worker) that does not answer costs the caller a few seconds and a 503 temporal_unavailable (api/problem.ts),
 * never a ~20 s hang while the client retries. Read at call time, so a process (or a test) can tune them.
 */
import { type Client, isGrpcServiceError } from '@temporalio/client';
import { causeChain } from './cause-chain';

const DEFAULT_CALL_TIMEOUT_MS = 5_000;
const DEFAULT_LIVE_QUERY_TIMEOUT_MS = 2_000;

function positiveMs(value: string | undefined, fallback: number): number {
  const parsed = Number(value);
  return Number.isFinite(parsed) && parsed > 0 ? parsed : fallback;
}

/** Starts, updates and signals: TEMPORAL_CALL_TIMEOUT_MS (default 5 s). */
export function temporalCallTimeoutMs(): number {
  return positiveMs(process.env.TEMPORAL_CALL_TIMEOUT_MS, DEFAULT_CALL_TIMEOUT_MS);
}

/**
 * The workflow query behind `live` in GET /v1/subscriptions/:id: TEMPORAL_QUERY_TIMEOUT_MS (default 2 s). A query
 * needs a worker to answer it, so a worker that is down makes it wait; the answer comes from Postgres without it.
 */
export function liveQueryTimeoutMs(): number {
  return positiveMs(process.env.TEMPORAL_QUERY_TIMEOUT_MS, DEFAULT_LIVE_QUERY_TIMEOUT_MS);
}

/**
 * The deadline passed before Temporal answered. Under load the gRPC client may report its own expired deadline as
 * CANCELLED ("Call cancelled") instead of DEADLINE_EXCEEDED: the query behind `live` then read as a refusal
 * (`live_query_failed`) and an update as an unknown error, where both mean "no answer in time" (a 503
 * temporal_unavailable, api/problem.ts).
 */
export class TemporalDeadlinePassed extends Error {
  constructor(timeoutMs: number, cause: unknown) {
    super(`Temporal did not answer within ${timeoutMs} ms`, { cause });
    this.name = 'TemporalDeadlinePassed';
  }
}

const GRPC_CANCELLED = 1;

function isCancelledCall(error: unknown): boolean {
  return causeChain(error).some((link) => isGrpcServiceError(link) && link.code === GRPC_CANCELLED);
}

/** Runs `call` with every gRPC request in it bounded by one deadline `timeoutMs` from now. */
export async function withTemporalDeadline<T>(temporal: Client, call: () => Promise<T>, timeoutMs: number = temporalCallTimeoutMs()): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  try {
    return await temporal.withDeadline(deadline, call);
  } catch (error) {
    // Nothing of ours cancels these calls: a cancellation at or after the deadline is the deadline.
    if (Date.now() >= deadline && isCancelledCall(error)) throw new TemporalDeadlinePassed(timeoutMs, error);
    throw error;
  }
}
