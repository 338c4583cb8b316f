/**
 * The subscription's life around its periods: scheduled start and trial, plan changes, pause and resume,
 * cancellation and the end. Update handlers stay thin: validate, then one step over the run's state.
 */
import { allHandlersFinished, condition, currentUpdateInfo, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { SubscriptionStatus } from '../../contract/subscription';
import type { PeriodBounds } from '../../domain/invoice';
import { parseInterval } from '../../domain/periods';
import { local } from '../activity-stubs';
import {
  CancelRequest,
  CancelResult,
  cancelSubscriptionUpdate,
  changePlanUpdate,
  pauseSubscriptionUpdate,
  PauseRequest,
  PlanChangeRequest,
  PlanChangeResult,
  resumeSubscriptionUpdate,
  SEARCH_ATTRIBUTES,
  SubscriptionState,
  withdrawScheduledChangeUpdate,
} from '../definitions';
import { refuseWhileNeedsAttention, withAttention } from './attention';
import { unlessDeterministic } from './deterministic';
import { collect, collectAfterTheEnd } from './collection';
import { offerRetention, offerWinBack, retentionTerms } from './offers';
import { showOpsDetails } from './ops-view';
import { closeUsage, openUsageUntil } from './period';
import {
  PLAN_CHANGE_BEFORE_FIRST_PERIOD,
  PLAN_CHANGE_KEYED_BY_REQUEST,
  PLAN_CHANGE_WAITS_FOR_SCHEDULED_CHANGE,
  UNPAID_INVOICES_COLLECTED_AFTER_THE_END,
  USAGE_END_RECORDED_WHEN_DECIDED,
} from './patch-ids';
import { bounds, msUntil, note, nowIso, patchTaken, periodOf, SubscriptionRun } from './state';
import { acceptCancellation, changeStatus, moveCalendarBy, showScheduledChange, switchPlan } from './transitions';
import { afterThresholdCharge } from './thresholds';
import { inTurn } from './turns';

const TRIAL_ENDING_NOTICE_MS = 3 * 86_400_000;

/** The refusal that names why a subscription in this status cannot take the request; any other is not active. */
const REFUSAL_IN_STATUS: Partial<Record<SubscriptionStatus, string>> = {
  paused: 'subscription_paused',
  suspended: 'subscription_suspended',
  retention_offered: 'retention_offer_pending',
};

function requireStatus(run: SubscriptionRun, ...allowed: SubscriptionStatus[]): void {
  refuseWhileNeedsAttention(run);
  // An error's message is not a command: naming the status changes no history (a refused update writes none).
  if (!allowed.includes(run.status)) throw new Error(REFUSAL_IN_STATUS[run.status] ?? 'subscription_not_active');
}

/** A cancellation that takes effect now was accepted: the main loop is ending the subscription (closing usage, last invoice). */
function refuseWhileEnding(run: SubscriptionRun): void {
  if (run.cancelNow) throw new Error('subscription_already_canceled');
}

/** The period's end has passed: the main loop is handing over to the next period's run. */
function refuseAtBoundary(run: SubscriptionRun): void {
  if (run.currentPeriod && Date.now() >= run.currentPeriod.end.getTime()) throw new Error('period_opening');
}

/**
 * The first run waits for a future start date, then through the trial (with a notice before it ends).
 * Returns false when the subscription was canceled before its first period.
 */
export async function waitForFirstPeriod(run: SubscriptionRun): Promise<boolean> {
  note(run, 'created');
  const canceled = (): boolean => run.cancelNow !== null;
  const startAt = new Date(run.input.startAt);
  if (startAt.getTime() > Date.now()) {
    await condition(canceled, msUntil(startAt), { summary: 'subscription starts' });
    if (run.cancelNow) return false;
  }
  const trialEnd = run.trialEnd;
  if (!trialEnd) return afterPlanSwitchesBeforeFirstPeriod(run);
  await afterPlanSwitchesInFlight(run);
  await changeStatus(run, 'trialing');
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.periodEnd, value: trialEnd }]);
  const noticeAt = new Date(trialEnd.getTime() - TRIAL_ENDING_NOTICE_MS);
  if (noticeAt.getTime() > Date.now() && !(await condition(canceled, msUntil(noticeAt), { summary: 'trial ending notice' }))) {
    // A notice that cannot be stored is noted (notification_failed); the trial still converts.
    await afterPlanSwitchesInFlight(run);
    await unlessDeterministic(run, 'notification', () =>
      local.notifyCustomer({
        subscriptionId: run.input.subscriptionId,
        eventType: 'trial.ending',
        dedupeKey: `trial.ending:${run.input.subscriptionId}`,
        payload: { trialEnd: trialEnd.toISOString() },
      }),
    );
  }
  if (!run.cancelNow) await condition(canceled, msUntil(trialEnd), { summary: 'trial ends' });
  if (run.cancelNow) return false;
  note(run, 'trial_converted');
  return afterPlanSwitchesBeforeFirstPeriod(run);
}

/**
 * A plan change taken before the first period (`changePlanBeforeFirstPeriod`) whose switch is still being written
 * finishes first: the first period is placed in the new plan's interval and bills its fee. Only a run that took such
 * a change waits (its patch marker is in the history), so histories recorded before replay as they were. False when
 * a cancellation was taken meanwhile: the subscription ends before its first period.
 */
async function afterPlanSwitchesBeforeFirstPeriod(run: SubscriptionRun): Promise<boolean> {
  await afterPlanSwitchesInFlight(run);
  return run.cancelNow === null;
}

/**
 * Before the first run's own local activities (the trial's status, its ending notice, the first period): a plan
 * switch in flight writes with local activities too, and the two must not interleave, or a replay grouping their
 * completions differently would put the main loop's command before the handler's (turns.ts `afterRunningHandlers`).
 * Only a run that took a change before the first period waits, so histories without one replay as they were.
 */
async function afterPlanSwitchesInFlight(run: SubscriptionRun): Promise<void> {
  if (run.patchesTaken.has(PLAN_CHANGE_BEFORE_FIRST_PERIOD) && !allHandlersFinished()) await condition(allHandlersFinished);
}

/** The end: the last usage is still invoiced (with a credit for unused time if the plan gives one). */
export async function endSubscription(run: SubscriptionRun, request: CancelRequest, usageStretch: PeriodBounds | null, unusedFrom: Date | null): Promise<SubscriptionState> {
  // Before the grace window: from here on ingestion refuses usage stamped after the stretch, which nothing would bill.
  // Not for a cancellation at the period's end, the usual one: the row's status and period end tell ingestion already
  // (and its run takes no patch marker). A side step: its deterministic failure is noted and the subscription ends
  // all the same (the status then tells).
  const endsAtPeriodEnd = request === run.pendingCancellation && usageStretch?.end === run.currentPeriod?.end.toISOString();
  if (usageStretch && !endsAtPeriodEnd && patchTaken(run, USAGE_END_RECORDED_WHEN_DECIDED)) {
    await unlessDeterministic(run, 'usage_end_record', () => local.recordUsageEnd({ subscriptionId: run.input.subscriptionId, usageEndsAt: usageStretch.end }));
  }
  const usagePeriod = usageStretch ? await withAttention(run, 'close_usage', () => closeUsage(run, usageStretch, run.usagePlanId, 'wait_for_grace')) : null;
  const period = run.currentPeriod;
  const unusedFeeCredit = unusedFrom && period && run.plan.creditUnusedOnCancel ? { period: bounds(period), from: unusedFrom.toISOString() } : null;
  if (usagePeriod || unusedFeeCredit) {
    const request = { subscriptionId: run.input.subscriptionId, kind: 'closing' as const, flatFeePeriod: null, usagePeriod, usagePlanId: run.usagePlanId, unusedFeeCredit };
    const closing = await withAttention(run, 'create_closing_invoice', () => local.createPeriodInvoice(request));
    await collect(run, closing);
  }
  const owed = run.unpaidInvoice !== null && patchTaken(run, UNPAID_INVOICES_COLLECTED_AFTER_THE_END);
  await changeStatus(run, 'canceled', request.reason);
  // Canceled when the cancellation takes effect; what it billed is still collected after that.
  if (owed) await collectAfterTheEnd(run, request.requestedBy === 'dunning');
  return offerWinBack(run);
}

/**
 * Where the service the period's fee paid for ended, for a cancellation now: the pause's start while paused (paused
 * time is not billed: a resume would have moved the period's end on by it), else now. From the cancellation, the
 * credit for unused time lost the paused days, and all of it once the pause outlasted the period's end.
 */
export function serviceEndedAt(run: SubscriptionRun, now: Date): Date {
  return run.status === 'paused' && run.pausedAt ? run.pausedAt : now;
}

/** The main loop's step after a pause: the paused time is given back, moving this and every later boundary. */
export async function resumeFromPause(run: SubscriptionRun): Promise<void> {
  const pausedMs = Date.now() - run.pausedAt!.getTime();
  run.pausedAt = null;
  run.pausedUntil = null;
  note(run, 'resumed', `${Math.round(pausedMs / 1000)} s paused`);
  moveCalendarBy(run, pausedMs);
  await changeStatus(run, 'active', 'resumed');
}

export function handleCancellation(run: SubscriptionRun): void {
  const validator = (request: CancelRequest): void => {
    if (run.status === 'canceled' || run.cancelNow) throw new Error('subscription_already_canceled');
    // Billing waits on a failed step: an accepted cancellation could never take effect until ops retry it.
    refuseWhileNeedsAttention(run);
    if (run.status === 'retention_offered') throw new Error('retention_offer_pending');
    if (request.at !== 'now' && request.at !== 'period_end') throw new Error('invalid_cancel_timing');
    // Suspended, the loop waits for a payment and no period ends: only a cancellation now can take effect.
    if (request.at === 'period_end' && run.status === 'suspended') throw new Error('subscription_suspended');
    // Paused, no period ends until a resume, and the pending cancellation would leave no way to resume: only a
    // cancellation now can take effect (or resume first, then cancel at the period's end).
    if (request.at === 'period_end' && run.status === 'paused') throw new Error('subscription_paused');
  };
  setHandler(
    cancelSubscriptionUpdate,
    inTurn(run, validator, async (request): Promise<CancelResult> => {
      const terms = retentionTerms(run);
      const offered = terms && (await offerRetention(run, request, terms));
      return offered || acceptCancellation(run, request);
    }),
    { validator },
  );
}

/**
 * Immediate: usage so far is closed and rated at the old plan's prices; the fee is prorated to the second.
 * The change instant is the one recorded for this request (its update id), not this workflow task's clock: a
 * retried task whose local activities already ran closes the same stretch and finds the same proration invoice.
 */
async function changePlanNow(run: SubscriptionRun, request: PlanChangeRequest): Promise<PlanChangeResult> {
  const period = periodOf(run);
  const oldPlan = run.plan;
  let changeAt = new Date();
  if (patchTaken(run, PLAN_CHANGE_KEYED_BY_REQUEST)) {
    // Nothing has taken effect yet: a deterministic failure here fails this update (the caller is told), billing goes on.
    const recorded = await local.recordPlanChange({
      subscriptionId: run.input.subscriptionId,
      requestKey: currentUpdateInfo()!.id,
      changeAt: changeAt.toISOString(),
      oldPlanId: oldPlan.planId,
      newPlanId: request.plan.planId,
      requestedBy: request.requestedBy,
      periodStart: periodOf(run).start.toISOString(),
      periodEnd: periodOf(run).end.toISOString(),
    });
    changeAt = new Date(recorded.changeAt);
  }
  // From here on the stretch is closed: each step waits in needs_attention on a deterministic failure (this update
  // stays in flight) and resumes where it stopped, so the closed usage is invoiced once and the plan switched once.
  const stretch = openUsageUntil(run, changeAt);
  const usagePeriod = await withAttention(run, 'close_usage', () => closeUsage(run, stretch, run.usagePlanId, 'now'));
  const proration = {
    subscriptionId: run.input.subscriptionId,
    period: bounds(period),
    changeAt: changeAt.toISOString(),
    oldPlanId: oldPlan.planId,
    newPlanId: request.plan.planId,
    usagePeriod,
    // In the grace window the period's invoice is not written yet; it will take this discount (./period.ts takes it
    // after the wait), so the unused time is credited at the fee the customer pays, not at the list price.
    unwrittenFeeDiscount: run.discount && run.discount.periodsLeft > 0 ? run.discount.percentOff : null,
  };
  const invoice = await withAttention(run, 'create_proration_invoice', () => local.createProrationInvoice(proration));
  const change = { effective: 'immediate' as const, at: changeAt.toISOString(), requestedBy: request.requestedBy };
  await withAttention(run, 'apply_plan_change', () => switchPlan(run, request.plan, change));
  await collect(run, invoice);
  return { effective: 'immediate', effectiveAt: changeAt.toISOString(), planCode: run.plan.planCode, invoice: run.lastInvoice };
}

/** The first run waits for its start or through its trial: no period is placed, nothing has been billed. */
function beforeFirstPeriod(run: SubscriptionRun): boolean {
  return run.currentPeriod === null && (run.status === 'scheduled' || run.status === 'trialing');
}

/**
 * A change before the first period (before the start, or in the trial): nothing was billed, so nothing is prorated,
 * and "now" and "at period end" both name the plan the first period bills. The plan is switched now (row, audit,
 * search attribute, timeline) and the trial goes on to the end it was granted, whatever trial the new plan offers:
 * the first period starts where it would have, lasts the new plan's interval and bills its fee; the usage from then on
 * is rated at its prices. Answered as taking effect now, with no invoice.
 */
async function changePlanBeforeFirstPeriod(run: SubscriptionRun, request: PlanChangeRequest): Promise<PlanChangeResult> {
  const at = nowIso();
  // The trial's usage is not billed: the first period's stretch opens where the calendar starts, as before the switch.
  const usageOpenSince = run.usageOpenSince;
  await switchPlan(run, request.plan, { effective: 'immediate', at, requestedBy: request.requestedBy });
  run.usageOpenSince = usageOpenSince;
  run.interval = parseInterval(run.plan.billingInterval);
  showOpsDetails(run);
  return { effective: 'immediate', effectiveAt: at, planCode: run.plan.planCode, invoice: null };
}

/**
 * The period is being opened and its due scheduled change is being applied: until that write returns, `run.plan` is
 * still the plan before it, and the period's usage stretch is not open yet. An immediate change taken then prorated
 * from that plan (crediting a fee the period's invoice never billed: -100.00 for a plan the customer had left, the
 * invoice billing the scheduled plan's 50.00) and closed the previous period's usage; a change at period end was
 * answered as scheduled, then dropped when the scheduled change finished applying. Refused as withdrawing is.
 */
function applyingScheduledChange(run: SubscriptionRun): boolean {
  return run.openingPeriod && run.scheduledChange !== null && new Date(run.scheduledChange.effectiveAt) <= periodOf(run).start;
}

export function handlePlanChanges(run: SubscriptionRun): void {
  const sameTerms = (request: PlanChangeRequest): void => {
    if (request.plan.planId === run.plan.planId) throw new Error('same_plan');
    if (request.plan.currency !== run.plan.currency) throw new Error('currency_mismatch');
  };
  const admissible = (request: PlanChangeRequest): void => {
    if (beforeFirstPeriod(run)) {
      refuseWhileNeedsAttention(run);
      refuseWhileEnding(run);
      return sameTerms(request);
    }
    // The trial has ended (or the start come) and the first period is being placed and opened: its status is
    // recorded next, and a change then is an ordinary one.
    if (run.status === 'scheduled' || run.status === 'trialing') throw new Error('period_opening');
    requireStatus(run, 'active');
    refuseWhileEnding(run);
    sameTerms(request);
    if (request.plan.billingInterval !== run.plan.billingInterval && request.effective === 'immediate') {
      throw new Error('interval_change_needs_period_end');
    }
    // Past the boundary the run is handing over to the next period: an immediate change would prorate a period
    // that has ended. A change at period end still takes effect (the next run applies it as it opens).
    if (request.effective === 'immediate') refuseAtBoundary(run);
  };
  // A validator's rejection leaves no history: it refuses unconditionally.
  const validator = (request: PlanChangeRequest): void => {
    admissible(request);
    if (applyingScheduledChange(run)) throw new Error('period_opening');
  };
  // The handler checks again on its turn (./turns.ts): there the refusal changes what a recorded history did, so it
  // is asked behind a patch, and only where it applies.
  const onItsTurn = (request: PlanChangeRequest): void => {
    admissible(request);
    if (beforeFirstPeriod(run) && !patchTaken(run, PLAN_CHANGE_BEFORE_FIRST_PERIOD)) throw new Error('subscription_not_active');
    if (applyingScheduledChange(run) && patchTaken(run, PLAN_CHANGE_WAITS_FOR_SCHEDULED_CHANGE)) throw new Error('period_opening');
  };
  setHandler(
    changePlanUpdate,
    inTurn(run, onItsTurn, async (request): Promise<PlanChangeResult> => {
      if (beforeFirstPeriod(run)) return changePlanBeforeFirstPeriod(run, request);
      if (request.effective !== 'period_end') return changePlanNow(run, request);
      // Scheduled for the next renewal; a later request replaces it, and it can be withdrawn until then.
      const change = { plan: request.plan, effectiveAt: periodOf(run).end.toISOString(), requestedBy: request.requestedBy };
      run.scheduledChange = change;
      note(run, 'plan_change_scheduled', `${request.plan.planCode} at ${change.effectiveAt}`);
      showScheduledChange(run);
      return { effective: 'period_end', effectiveAt: change.effectiveAt, planCode: request.plan.planCode, invoice: null };
    }),
    { validator },
  );

  const withdrawValidator = (_request: { requestedBy: string }): void => {
    refuseWhileNeedsAttention(run); // the failed step may be this very change taking effect
    if (!run.scheduledChange) throw new Error('no_scheduled_change');
    // The period is being opened and the change is being applied: withdrawn would be answered, yet it takes effect.
    if (run.openingPeriod && new Date(run.scheduledChange.effectiveAt) <= periodOf(run).start) throw new Error('period_opening');
  };
  setHandler(
    withdrawScheduledChangeUpdate,
    inTurn(run, withdrawValidator, () => {
      note(run, 'plan_change_withdrawn', run.scheduledChange?.plan.planCode);
      run.scheduledChange = null;
      showScheduledChange(run);
      return { withdrawn: true };
    }),
    { validator: withdrawValidator },
  );
}

export function handlePauses(run: SubscriptionRun): void {
  const pauseValidator = (request: PauseRequest): void => {
    requireStatus(run, 'active');
    // The period is being opened (usage close after the grace window, invoice, first charge): a decline would put
    // the subscription in dunning and silently drop the pause, so a pause waits until the period is open.
    if (run.openingPeriod) throw new Error('period_opening');
    refuseWhileEnding(run);
    // Past the boundary the next run opens the period as active: the pause would be dropped.
    refuseAtBoundary(run);
    if (request.until && new Date(request.until).getTime() <= Date.now()) throw new Error('pause_until_in_past');
  };
  setHandler(
    pauseSubscriptionUpdate,
    inTurn(run, pauseValidator, async (request) => {
      run.pausedAt = new Date();
      run.pausedUntil = request.until;
      run.resumeRequested = false;
      await changeStatus(run, 'paused', request.until ? `until ${request.until}` : 'until resumed');
      return { status: run.status, pausedUntil: run.pausedUntil };
    }, () => afterThresholdCharge(run)),
    { validator: pauseValidator },
  );

  const resumeValidator = (_request: { requestedBy: string }): void => {
    refuseWhileNeedsAttention(run);
    // Canceled now while paused: the subscription is ending, it will never be active again.
    refuseWhileEnding(run);
    if (run.status !== 'paused') throw new Error('subscription_not_paused');
  };
  setHandler(
    resumeSubscriptionUpdate,
    inTurn(run, resumeValidator, () => {
      run.resumeRequested = true;
      return { status: 'active' as SubscriptionStatus };
    }),
    { validator: resumeValidator },
  );
}
