/**
 * Lifecycle updates (plan change, cancel, pause, resume, withdraw) take effect one at a time, in arrival order.
 * Their validators all see the state as it was when they arrived, so twenty parallel requests for the same plan
 * change would all pass; each handler therefore waits its turn and then checks its precondition again against the
 * state the earlier ones left, rejecting honestly (e.g. `same_plan`) instead of applying a second change.
 */
import { allHandlersFinished, ApplicationFailure, condition, patched } from '@temporalio/workflow';
import { MAIN_LOOP_AFTER_HANDLERS, SERIALIZED_LIFECYCLE_UPDATES } from './patch-ids';
import { patchTaken, SubscriptionRun } from './state';

/** A validator's rejection (its message is the problem code), raised from a handler as a failed update. */
function asRejection(error: unknown): unknown {
  if (error instanceof ApplicationFailure || !(error instanceof Error)) return error;
  return ApplicationFailure.create({ message: error.message, type: error.message, nonRetryable: true });
}

/**
 * Wraps an update handler: wait for the earlier lifecycle updates to finish (and for `settled`, what else the request
 * must be judged after), re-validate, then run.
 */
export function inTurn<Request, Result>(
  run: SubscriptionRun,
  validate: (request: Request) => void,
  handle: (request: Request) => Promise<Result> | Result,
  settled?: () => Promise<void>,
): (request: Request) => Promise<Result> {
  return async (request) => {
    if (!patchTaken(run, SERIALIZED_LIFECYCLE_UPDATES)) return handle(request);
    const ticket = run.turns.issued;
    run.turns.issued += 1;
    await condition(() => run.turns.serving === ticket);
    try {
      if (settled) await settled();
      try {
        validate(request);
      } catch (error) {
        throw asRejection(error);
      }
      return await handle(request);
    } finally {
      run.turns.serving += 1;
    }
  };
}

/**
 * Called by the main loop when a wait ends, before it acts: lets every running handler finish first. Handlers and
 * the main loop that both await local activities interleave by when those resolve, and a replay may resolve them
 * in one activation where the live run took two: a handler's completion and the main loop's next command would then
 * change places and the run could never be replayed (a nondeterminism error on every restart). With the main loop
 * acting only between handlers, its commands follow theirs in any activation grouping. Handlers never wait for the
 * main loop, so this cannot deadlock.
 */
export async function afterRunningHandlers(run?: SubscriptionRun): Promise<void> {
  // With the run, a patch the previous run took costs this one no marker (state.ts `patchTaken`).
  if (run ? patchTaken(run, MAIN_LOOP_AFTER_HANDLERS) : patched(MAIN_LOOP_AFTER_HANDLERS)) await condition(allHandlersFinished);
}

/**
 * False when `afterRunningHandlers(run)` has nothing to do: the run waits for handlers and none is running. The main
 * loop asks first (`if (handlersMayBeRunning(run)) await afterRunningHandlers(run)`) so that its usual wake-up, with
 * no handler in flight, creates no condition and no promise (about a quarter of a period's promises, each of which
 * the SDK's promise hook records a stack trace for: docs/benchmarks.md). Skipping the await moves no command: with
 * no handler in flight, no other coroutine of the run can run before the main loop's next command. Runs from before
 * the wait (no patch) keep their await, whose timing their histories recorded.
 */
export function handlersMayBeRunning(run: SubscriptionRun): boolean {
  return !patchTaken(run, MAIN_LOOP_AFTER_HANDLERS) || !allHandlersFinished();
}
