/**
 * State changes other code can see: each is recorded in Postgres first (the API reads it), then shown in the
 * search attributes ops filter on. Every path that changes status, plan or cancellation goes through here.
 */
import { upsertSearchAttributes } from '@temporalio/workflow';
import type { SubscriptionStatus } from '../../contract/subscription';
import type { BillingPeriod } from '../../domain/periods';
import { MAX_CLOCK_SKEW_MS } from '../../domain/usage-events';
import { local } from '../activity-stubs';
import { CancelRequest, CancelResult, PlanSchedule, SEARCH_ATTRIBUTES } from '../definitions';
import { unlessDeterministic } from './deterministic';
import { showOpsDetails } from './ops-view';
import {
  CANCEL_NOW_TAKES_EFFECT_WHEN_ACCEPTED,
  PAUSED_TIME_GIVEN_BACK_EXACTLY,
  PERIOD_END_CANCELLATION_RECORDED_NEAR_THE_END,
  PERIOD_END_CANCELLATION_RECORDED_WHILE_OPENING,
  USAGE_END_RECORDED_WHEN_DECIDED,
} from './patch-ids';
import { note, nowIso, patchTaken, periodOf, periodOnCalendar, standingStatus, SubscriptionRun } from './state';

/** Moves to a new status: Postgres first (the API reads it), then the search attributes ops filter on. */
export async function changeStatus(run: SubscriptionRun, next: SubscriptionStatus, reason?: string): Promise<void> {
  if (next === run.status) return;
  // Out of `canceled` only by a win-back restart: the row learns where the service resumes, to remember the gap.
  const resumes = run.status === 'canceled' && next !== 'needs_attention' ? { serviceResumesAt: run.usageOpenSince.toISOString() } : {};
  run.status = next;
  // A resume (or a paid suspension) moved the period's end: the row learns it with the status, so that ingestion's
  // limits and cap, the usage views and the janitor judge the period by the end the workflow bills it to.
  const moved = run.periodEndBeforeMove ? { from: run.periodEndBeforeMove.toISOString(), to: periodOf(run).end.toISOString() } : null;
  run.periodEndBeforeMove = null;
  note(run, `status:${next}`, reason);
  showOpsDetails(run);
  // The row mirrors the workflow: a change it cannot hold must not stop billing (nor, for needs_attention itself,
  // recurse into needing attention). It is noted (status_record_failed) and the next change rewrites the row.
  await unlessDeterministic(run, 'status_record', () =>
    local.recordSubscriptionStatus({
      subscriptionId: run.input.subscriptionId,
      status: next,
      at: nowIso(),
      reason: reason ?? null,
      trialEnd: run.trialEnd?.toISOString() ?? null,
      usageBlocked: next === 'suspended' || (next === 'paused' && run.plan.usageWhilePaused === 'reject'),
      ...(moved ? { movedPeriodEnd: moved } : {}),
      ...resumes,
    }),
  );
  upsertSearchAttributes([
    { key: SEARCH_ATTRIBUTES.status, value: next },
    { key: SEARCH_ATTRIBUTES.pastDue, value: next === 'past_due' || next === 'suspended' },
  ]);
}

/**
 * Time in which the subscription gave no service (paused, or suspended until paid) is not billed: the current period
 * moves on by exactly that time (its start and end; its length, which proration divides by, stays the one paid for),
 * and the calendar restarts at its moved end: monthly from a Mar 3 end, Apr 3 and May 3; from Mar 31, Apr 30 and
 * May 31. Before (and for histories recorded so), the anchor moved by that time as an instant and the period was
 * placed again from it with month-end clamping: its end moved by days more or less than the time given back.
 */
export function moveCalendarBy(run: SubscriptionRun, ms: number): void {
  const period = periodOf(run);
  run.periodEndBeforeMove ??= period.end;
  const moved: BillingPeriod = { index: period.index, start: new Date(period.start.getTime() + ms), end: new Date(period.end.getTime() + ms) };
  const shiftedAnchor = new Date(run.billingAnchor.getTime() + ms);
  // Asked only where the two rules place other periods, so a daily or weekly plan's resume pays no marker.
  if (anchorShiftKeepsTheCalendar(run, shiftedAnchor, moved) || !patchTaken(run, PAUSED_TIME_GIVEN_BACK_EXACTLY)) {
    run.billingAnchor = shiftedAnchor;
    run.currentPeriod = periodOnCalendar(run, run.interval, run.periodIndex);
  } else {
    run.billingAnchor = moved.end;
    run.anchorPeriodIndex = run.periodIndex + 1;
    run.movedPeriodStart = moved.start;
    run.currentPeriod = moved;
  }
  showPeriodEnd(run);
}

/**
 * Whether moving the anchor as an instant gives the same periods as restarting the calendar at the moved end: this
 * one moved exactly, and every later boundary the same. Days and clock time add up alike; months do from an end that
 * month-end clamping left on the anchor's own day. A period already placed off its calendar (a second resume in it)
 * only the restart moves.
 */
function anchorShiftKeepsTheCalendar(run: SubscriptionRun, shiftedAnchor: Date, moved: BillingPeriod): boolean {
  if (run.periodIndex < run.anchorPeriodIndex) return false;
  const calendar = { billingAnchor: shiftedAnchor, anchorPeriodIndex: run.anchorPeriodIndex, movedPeriodStart: null };
  const shifted = periodOnCalendar(calendar, run.interval, run.periodIndex);
  if (shifted.start.getTime() !== moved.start.getTime() || shifted.end.getTime() !== moved.end.getTime()) return false;
  const { months, days, milliseconds } = run.interval;
  return months === 0 || (days === 0 && milliseconds === 0 && moved.end.getUTCDate() === shiftedAnchor.getUTCDate());
}

/** Shows the current period's end in the search attribute ops filter on. */
export function showPeriodEnd(run: SubscriptionRun): void {
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.periodEnd, value: periodOf(run).end }]);
}

/** Back from an offer (accepted, declined or expired) to active, or past due while an invoice is unpaid. */
export function returnToStanding(run: SubscriptionRun, reason: string): Promise<void> {
  return changeStatus(run, standingStatus(run), reason);
}

export function showScheduledChange(run: SubscriptionRun): void {
  const change = run.scheduledChange;
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.scheduledChange, value: change ? `${change.plan.planCode}@${change.effectiveAt}` : '' }]);
}

/**
 * Puts a new plan in force: recorded, noted, shown, and any scheduled change cleared. Used by the renewal that
 * applies a scheduled change (the renewal then moves the usage stretch) and by an immediate change.
 */
export async function switchPlan(
  run: SubscriptionRun,
  next: PlanSchedule,
  change: { readonly effective: 'immediate' | 'period_end'; readonly at: string; readonly requestedBy: string },
): Promise<void> {
  await local.applyPlanChange({ subscriptionId: run.input.subscriptionId, planId: next.planId, ...change });
  note(run, 'plan_changed', `${run.plan.planCode} -> ${next.planCode}`);
  run.plan = next;
  run.metersByPlan.set(next.planId, next.hasUsageCharges);
  if (change.effective === 'immediate') {
    // The usage up to the change was closed under the old plan; from here on it is rated under the new one.
    run.usageOpenSince = new Date(change.at);
    run.usagePlanId = next.planId;
  }
  run.scheduledChange = null;
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.planCode, value: next.planCode }]);
  showScheduledChange(run);
}

/**
 * Where the accepted cancellation now takes effect, the main loop getting to it at `now`: when it was accepted (no
 * earlier than the open usage stretch). Before, where the loop got to it: accepted in the grace window after a
 * boundary, the closing invoice credited the unused fee only from the window's end and billed usage up to there.
 */
export function cancellationInstant(run: SubscriptionRun, now: Date): Date {
  const accepted = run.cancelNowAt;
  // Asked only where the two differ (the loop is later than the acceptance), so an ordinary cancellation pays no marker.
  if (!accepted || accepted.getTime() >= now.getTime() || !patchTaken(run, CANCEL_NOW_TAKES_EFFECT_WHEN_ACCEPTED)) return now;
  return new Date(Math.max(accepted.getTime(), run.usageOpenSince.getTime()));
}

/** Applies a cancellation as asked: now (the main loop ends the subscription), or at the end of the period. */
export async function acceptCancellation(run: SubscriptionRun, request: CancelRequest): Promise<CancelResult> {
  if (request.at === 'now' || run.status === 'scheduled' || run.status === 'trialing') {
    run.cancelNow = request;
    run.cancelNowAt = new Date();
    note(run, 'cancel_requested', `now: ${request.reason}`);
    // Answered "canceled, effective now": from the answer on, ingestion refuses usage stamped after it. Recorded only
    // when the main loop got to it (./lifecycle.ts endSubscription), usage sent in between (a whole grace window,
    // when accepted while the closed period's late usage is awaited) was accepted and never billed.
    const usageOpen = run.status !== 'scheduled' && run.status !== 'trialing';
    if (usageOpen && patchTaken(run, CANCEL_NOW_TAKES_EFFECT_WHEN_ACCEPTED)) {
      const usageEndsAt = run.cancelNowAt.toISOString();
      await unlessDeterministic(run, 'usage_end_record', () => local.recordUsageEnd({ subscriptionId: run.input.subscriptionId, usageEndsAt }));
    }
    return { status: 'canceled', effectiveAt: run.cancelNowAt.toISOString() };
  }
  run.pendingCancellation = request;
  // Accepted after the period's end (an open retention offer or dunning held the handover, or the worker was
  // behind): the service went on until now, and so did the usage ingestion accepted. The cancellation takes effect
  // now, and the closing invoice bills the usage up to here; at the period's end that usage was never billed.
  const periodEnd = periodOf(run).end;
  if (Date.now() > periodEnd.getTime() && patchTaken(run, USAGE_END_RECORDED_WHEN_DECIDED)) run.pendingCancellationEffectiveAt = new Date();
  note(run, 'cancel_requested', `period_end: ${request.reason}`);
  // Accepted while the period is being opened (the grace window after its start): until its invoice is written the row
  // still shows the closed period, whose end ingestion took for this cancellation's and refused the new period's
  // usage, which the closing invoice bills. The end answered is recorded, before the status that ingestion reads it
  // with. Asked only then.
  // Accepted less than the clock skew ingestion allows before the end: usage accepted before it may be stamped past the
  // end, and only the close of a recorded end claims it (store/usage.ts `claimUsageAcceptedPastTheEnd`). Asked only then.
  const nearTheEnd = !run.openingPeriod && periodEnd.getTime() - Date.now() < MAX_CLOCK_SKEW_MS;
  const recorded = run.openingPeriod ? PERIOD_END_CANCELLATION_RECORDED_WHILE_OPENING : nearTheEnd ? PERIOD_END_CANCELLATION_RECORDED_NEAR_THE_END : null;
  if (recorded && !run.pendingCancellationEffectiveAt && patchTaken(run, recorded)) {
    await unlessDeterministic(run, 'usage_end_record', () => local.recordUsageEnd({ subscriptionId: run.input.subscriptionId, usageEndsAt: periodEnd.toISOString() }));
  }
  await changeStatus(run, 'pending_cancellation', request.reason);
  return { status: 'pending_cancellation', effectiveAt: (run.pendingCancellationEffectiveAt ?? periodEnd).toISOString() };
}
