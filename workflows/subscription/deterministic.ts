/**
 * How a workflow tells a deterministic activity failure (classified non-retryable by activities/failures.ts: the
 * same input fails again) from anything else. Kept apart from ./attention.ts so that ./transitions.ts can use it
 * without an import cycle.
 */
import { ActivityFailure, ApplicationFailure, log } from '@temporalio/workflow';
import { note, SubscriptionRun } from './state';

/** Messages are carried in the timeline across runs: keep them short. */
const MESSAGE_LIMIT = 300;

export interface DeterministicFailure {
  readonly type: string;
  readonly message: string;
}

/**
 * The activity's own failure when it was classified non-retryable; null for anything a retry may fix. A regular
 * activity's failure arrives wrapped in an ActivityFailure, a local activity's as the ApplicationFailure itself.
 */
export function deterministicFailureOf(error: unknown): DeterministicFailure | null {
  const cause = error instanceof ActivityFailure ? error.cause : error;
  if (!(cause instanceof ApplicationFailure) || !cause.nonRetryable) return null;
  return { type: cause.type ?? 'unknown', message: cause.message.slice(0, MESSAGE_LIMIT) };
}

/**
 * Runs a side step whose deterministic failure must not stop billing (a customer notification, an offer record,
 * the status mirror): the failure is noted in the timeline (`<what>_failed`) and logged for ops, and billing goes
 * on; the result is null then. Transient failures never arrive here (the activity retries them).
 */
export async function unlessDeterministic<T>(run: SubscriptionRun, what: string, action: () => Promise<T>): Promise<T | null> {
  try {
    return await action();
  } catch (error) {
    const failure = deterministicFailureOf(error);
    if (!failure) throw error;
    note(run, `${what}_failed`, `${failure.type}: ${failure.message}`);
    log.warn(`${what} failed deterministically; billing goes on`, { subscriptionId: run.input.subscriptionId, type: failure.type, message: failure.message });
    return null;
  }
}
