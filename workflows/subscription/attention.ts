/**
 * Needs attention: a billing step that failed in a way no retry can fix (the activity classified it
 * non-retryable: a value Postgres cannot hold, a rating error) stops here, visibly, instead of retrying forever
 * while the subscription bills nothing:
 *
 *   step fails (non-retryable) -> status needs_attention (Postgres, search attribute, outbox event, timeline)
 *        ^                                  | ops fix the data, then POST /v1/subscriptions/:id/retry
 *        +------ fails again ---------------+-> the same step runs again -> succeeds -> status as before, billing goes on
 *
 * Transient failures never get here: the activity retries them with backoff.
 */
import { condition, setHandler } from '@temporalio/workflow';
import type { SubscriptionStatus } from '../../contract/subscription';
import { local } from '../activity-stubs';
import { retryFailedStepUpdate } from '../definitions';
import { DeterministicFailure, deterministicFailureOf, unlessDeterministic } from './deterministic';
import { NEEDS_ATTENTION } from './patch-ids';
import { note, nowIso, patchTaken, SubscriptionRun } from './state';
import { changeStatus } from './transitions';

/**
 * The billing steps that can need attention, as ops see them in the timeline and the query (docs/operations.md
 * lists every activity call and why it is a step, handled where it is, or left retrying).
 */
export type BillingStep =
  | 'close_usage'
  | 'create_period_invoice'
  | 'create_closing_invoice'
  | 'check_spending'
  | 'create_threshold_invoice'
  | 'apply_plan_change'
  | 'create_proration_invoice'
  | 'charge_invoice'
  | 'refund_credit'
  | 'mark_invoice_uncollectible';

/**
 * Runs one billing step; on a deterministic failure waits in `needs_attention` for a retry request and runs the
 * step again, as often as it takes. When it finally succeeds the subscription returns to the status it had.
 */
export async function withAttention<T>(run: SubscriptionRun, step: BillingStep, action: () => Promise<T>): Promise<T> {
  let standing: SubscriptionStatus | null = null;
  for (;;) {
    try {
      const result = await action();
      if (standing) await recover(run, standing);
      return result;
    } catch (error) {
      const failure = deterministicFailureOf(error);
      if (!failure || !patchTaken(run, NEEDS_ATTENTION)) throw error;
      standing ??= run.status;
      await needAttention(run, step, failure);
      await condition(() => run.retryRequested);
      run.retryRequested = false;
    }
  }
}

async function needAttention(run: SubscriptionRun, step: BillingStep, failure: DeterministicFailure): Promise<void> {
  const previous = run.attention;
  const at = nowIso();
  run.attention = { step, errorType: failure.type, message: failure.message, since: previous?.since ?? at, failures: (previous?.failures ?? 0) + 1, retrying: false };
  const reason = `${step} failed (${failure.type}): ${failure.message}`;
  // The status change records it in Postgres, shows it to ops (BillingStatus) and queues subscription.needs_attention.
  if (run.status !== 'needs_attention') return changeStatus(run, 'needs_attention', reason);
  // Failed again after a retry: the status stays, so the alert is raised again explicitly.
  note(run, 'retry_failed', reason);
  await unlessDeterministic(run, 'notification', () =>
    local.notifyCustomer({
      subscriptionId: run.input.subscriptionId,
      eventType: 'subscription.needs_attention',
      dedupeKey: `subscription.needs_attention:${run.input.subscriptionId}:${at}`,
      payload: { subscriptionId: run.input.subscriptionId, status: 'needs_attention', at, reason },
    }),
  );
}

async function recover(run: SubscriptionRun, standing: SubscriptionStatus): Promise<void> {
  const step = run.attention?.step ?? 'step';
  run.attention = null;
  await changeStatus(run, standing, `${step} succeeded on retry`);
}

/** For update validators: nothing else can take effect while billing waits on a failed step. */
export function refuseWhileNeedsAttention(run: SubscriptionRun): void {
  if (run.status === 'needs_attention') throw new Error('subscription_needs_attention');
}

export function handleRetries(run: SubscriptionRun): void {
  setHandler(
    retryFailedStepUpdate,
    (request) => {
      const attention = run.attention!;
      run.retryRequested = true;
      run.attention = { ...attention, retrying: true };
      note(run, 'retry_requested', `${attention.step} by ${request.requestedBy}`);
      return { status: run.status, step: attention.step };
    },
    {
      validator: (_request: { requestedBy: string }) => {
        if (!run.attention) throw new Error('no_failed_step');
      },
    },
  );
}
