/**
 * One long-running workflow per subscription (id `subscription:<id>`). It decides *when* things happen: start,
 * trial, each billing period, usage close, invoicing, collection and dunning, plan changes, pause, cancellation,
 * retention and win-back. Activities do the I/O; domain/ computes the numbers.
 *
 * A run covers one or two billing periods, then continues as new at a boundary, so history stays small and a
 * workflow code change reaches every subscription within two periods (./subscription/state.ts
 * `nextPeriodInThisRun` says why two). The steps live in ./subscription/: the run's
 * state, the period step, collection and dunning, lifecycle updates, and offers.
 */
import { allHandlersFinished, condition, setHandler, workflowInfo } from '@temporalio/workflow';
import { paymentMethodUpdatedSignal, RetentionOfferState, SubscriptionState, subscriptionStateQuery, SubscriptionWorkflowInput, usageRecordedSignal } from './definitions';
import { handleRetries } from './subscription/attention';
import { runDunning } from './subscription/collection';
import { endSubscription, handleCancellation, handlePauses, handlePlanChanges, resumeFromPause, serviceEndedAt, waitForFirstPeriod } from './subscription/lifecycle';
import { expireRetentionOffer, handleOfferAnswers, pendingRetentionOffer } from './subscription/offers';
import { cancellationInstant } from './subscription/transitions';
import { periodNumber, showOpsDetails } from './subscription/ops-view';
import { checkSpending, openPeriod, openUsageUntil, placePeriod } from './subscription/period';
import { carriedState, continueToNextPeriod, msUntil, nextPeriodInThisRun, nowIso, patchTaken, periodOf, rollOver, snapshot, startRun, SubscriptionRun, takeReleasedPatches } from './subscription/state';
import {
  CANCEL_NOW_AT_HANDOVER_TAKES_EFFECT,
  CANCEL_NOW_IN_DUNNING_CREDITS_UNUSED_TIME,
  DECLINED_INVOICES_WAIT_THEIR_TURN,
  HANDOVER_KEEPS_RUN_STATE,
  RETENTION_OFFER_HOLDS_PERIOD_END,
} from './subscription/patch-ids';
import { checkThresholds, handleThresholdSignals } from './subscription/thresholds';
import { afterRunningHandlers, handlersMayBeRunning } from './subscription/turns';

export async function subscriptionWorkflow(input: SubscriptionWorkflowInput): Promise<SubscriptionState> {
  const run = startRun(input);
  takeReleasedPatches(run); // first: no patch of this run's code costs a marker later (./subscription/patch-ids.ts)
  handleRequests(run);
  showOpsDetails(run);

  if (!input.carried && !(await waitForFirstPeriod(run))) return endSubscription(run, run.cancelNow!, null, null);

  for (;;) {
    // Period n: close n-1's usage after its grace window, invoice (n's fees + n-1's usage), collect.
    placePeriod(run);
    showOpsDetails(run);
    if (!run.periodOpened) await openPeriod(run);

    let ended = await serveUntilPeriodEnd(run);
    while (!ended && (await handlersLeftMoreToServe(run))) ended = await serveUntilPeriodEnd(run);
    if (ended) return ended;

    // A cancellation now accepted after the loop last looked (while a threshold charge ran past the period's end) is
    // run state only: handed over, it was dropped, answered "canceled", and the next period billed.
    if (run.cancelNow && patchTaken(run, CANCEL_NOW_AT_HANDOVER_TAKES_EFFECT)) return endNow(run);
    const periodEnd = periodOf(run).end;
    const boundaryReached = Date.now() >= periodEnd.getTime();
    if (boundaryReached && run.pendingCancellation) {
      return endSubscription(run, run.pendingCancellation, openUsageUntil(run, run.pendingCancellationEffectiveAt ?? periodEnd), null);
    }
    const carried = carriedState(run, boundaryReached);
    // The next period in this run or in a fresh one (./state.ts `nextPeriodInThisRun`; a suggested restart within
    // the period always takes a fresh one). Never from inside a handler.
    if (!boundaryReached || !nextPeriodInThisRun(run, carried.periodIndex)) return continueToNextPeriod(run, carried);
    rollOver(run, carried);
  }
}

/**
 * Waits for the period's end, serving whatever the customer asks for in between (dunning, pause, offers, spending
 * and threshold checks). Returns the final state when the subscription ended, null at the period's end (or when
 * the server suggests a fresh run).
 */
async function serveUntilPeriodEnd(run: SubscriptionRun): Promise<SubscriptionState | null> {
  for (;;) {
    if (run.unpaidInvoice && !run.cancelNow) {
      if ((await runDunning(run)) === 'given_up') {
        return endSubscription(run, run.cancelNow ?? { at: 'now', reason: 'payment failed', requestedBy: 'dunning' }, openUsageUntil(run, nowIso()), unusedTimeAfterDunning(run));
      }
      continue;
    }
    if (run.status === 'paused' && !run.cancelNow) {
      const resumed = (): boolean => run.resumeRequested || run.cancelNow !== null;
      if (run.pausedUntil) await condition(resumed, msUntil(run.pausedUntil), { summary: `paused until ${run.pausedUntil}` });
      else await condition(resumed);
      if (handlersMayBeRunning(run)) await afterRunningHandlers(run);
      if (!run.cancelNow) await resumeFromPause(run); // a cancellation is handled below
      continue;
    }
    const offer = pendingRetentionOffer(run);
    const wakeAt = Math.min(periodOf(run).end.getTime(), offer ? new Date(offer.expiresAt).getTime() : Infinity);
    showOpsDetails(run);
    const waitingFor = offer && wakeAt < periodOf(run).end.getTime() ? 'retention offer expires' : `period ${periodNumber(run)} ends`;
    await condition(() => mustWake(run, offer), msUntil(new Date(wakeAt)), { summary: waitingFor });
    if (handlersMayBeRunning(run)) await afterRunningHandlers(run);
    if (run.cancelNow) return endNow(run);
    if (run.spendingCheckDue) await checkSpending(run);
    if (run.thresholdCheckDue) {
      await checkThresholds(run);
      if (run.unpaidInvoice) continue; // a declined threshold invoice goes to dunning before anything else
    }
    const openOffer = pendingRetentionOffer(run);
    if (openOffer && Date.now() >= new Date(openOffer.expiresAt).getTime()) {
      await expireRetentionOffer(run, openOffer);
      continue;
    }
    // The period ended with a retention offer open: its answer (or its expiry) decides whether the cancellation takes
    // effect at this period's end or the next period opens. Handed over, the offer (run state only) was dropped, the
    // next period billed, and the cancellation never took effect.
    if (openOffer && Date.now() >= periodOf(run).end.getTime() && patchTaken(run, RETENTION_OFFER_HOLDS_PERIOD_END)) {
      await condition(() => pendingRetentionOffer(run) !== openOffer, msUntil(openOffer.expiresAt), { summary: 'retention offer expires' });
      if (handlersMayBeRunning(run)) await afterRunningHandlers(run);
      continue;
    }
    if (Date.now() >= periodOf(run).end.getTime() || workflowInfo().continueAsNewSuggested) {
      // A handler that finished past the period's end left a declined invoice (a plan change at the boundary): dunning
      // first, as anywhere in the period. Handed over, the next run knew nothing of it and opened the period active.
      if (run.unpaidInvoice && patchTaken(run, DECLINED_INVOICES_WAIT_THEIR_TURN)) continue;
      return null;
    }
  }
}

/**
 * Before the handover, waits for the handlers still running (never from inside one). True when one that finished
 * only now left what the period must serve first, as the main loop does anywhere in the period: a declined invoice
 * (dunning), a retention offer (its answer or expiry decides the period's end), a pause. Before, a plan change whose
 * charge was declined as the run handed over left its invoice unpaid for good (the next run knew nothing of it).
 * A cancellation now is the caller's (CANCEL_NOW_AT_HANDOVER_TAKES_EFFECT). Asked only where one is left.
 */
async function handlersLeftMoreToServe(run: SubscriptionRun): Promise<boolean> {
  // Asked first: the usual boundary has no handler in flight, and then there is nothing to wait for (./subscription/turns.ts).
  if (allHandlersFinished()) return false;
  await condition(allHandlersFinished);
  const leftToServe = run.unpaidInvoice !== null || pendingRetentionOffer(run) !== null || run.status === 'paused';
  return !run.cancelNow && leftToServe && patchTaken(run, HANDOVER_KEEPS_RUN_STATE);
}

/**
 * Where the unused time of the period is credited from when dunning ended the subscription: from now when the
 * customer canceled now while an invoice was past due, as any cancellation now (the credit is then taken off that
 * unpaid invoice, store/credit-total-refunds.ts); before, none was given and the whole period's fee stayed owed for
 * part of it. None when dunning itself gave up, nor while suspended (the service ended at the suspension, not now).
 */
function unusedTimeAfterDunning(run: SubscriptionRun): Date | null {
  const credited = run.cancelNow !== null && run.status === 'past_due' && run.plan.creditUnusedOnCancel === true && patchTaken(run, CANCEL_NOW_IN_DUNNING_CREDITS_UNUSED_TIME);
  return credited ? serviceEndedAt(run, new Date()) : null;
}

/** A cancellation now: the usage up to now is invoiced, and the unused time credited from where the service ended. */
function endNow(run: SubscriptionRun): Promise<SubscriptionState> {
  const at = cancellationInstant(run, new Date());
  return endSubscription(run, run.cancelNow!, openUsageUntil(run, at), serviceEndedAt(run, at));
}

/** Whether the main loop must stop waiting for the period's end: something a handler did needs its attention. */
function mustWake(run: SubscriptionRun, offerWhenWaiting: RetentionOfferState | null): boolean {
  return (
    run.cancelNow !== null ||
    run.unpaidInvoice !== null ||
    run.status === 'paused' ||
    pendingRetentionOffer(run) !== offerWhenWaiting || // an offer made or answered moves the next deadline
    run.spendingCheckDue ||
    run.thresholdCheckDue ||
    workflowInfo().continueAsNewSuggested
  );
}

/** Queries, signals and updates, registered before the first await (updates validate first: a rejected one leaves no history). */
function handleRequests(run: SubscriptionRun): void {
  setHandler(subscriptionStateQuery, () => snapshot(run));
  setHandler(usageRecordedSignal, (summary) => {
    run.usageEventsReported += summary.eventCount;
    run.spendingCheckDue = true; // the main loop rates the usage so far and raises any threshold crossed
  });
  setHandler(paymentMethodUpdatedSignal, () => {
    run.paymentMethodUpdated = true;
  });
  handleCancellation(run);
  handleOfferAnswers(run);
  handlePlanChanges(run);
  handlePauses(run);
  handleRetries(run);
  handleThresholdSignals(run);
}
