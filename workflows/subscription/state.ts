/**
 * The state of one subscription run: everything the handlers and the main loop read and change, in one object,
 * so each step is a small function over it. Also what the run shows (query snapshot) and hands to the next run.
 */
import { continueAsNew, makeContinueAsNewFunc, patched, workflowInfo } from '@temporalio/workflow';
import type { PeriodInvoiceSummary, SubscriptionStatus } from '../../contract/subscription';
import type { PeriodBounds } from '../../domain/invoice';
import { addIntervals, BillingInterval, BillingPeriod, billingPeriod, parseInterval } from '../../domain/periods';
import { SEARCH_ATTRIBUTES } from '../definitions';
import { CHEAPER_PERIOD_STEP, HANDOVER_KEEPS_RUN_STATE, PATCH_GENERATIONS, PERIODS_SHARE_A_RUN } from './patch-ids';
import type {
  ActiveDiscount,
  AttentionState,
  CancelRequest,
  CarriedState,
  DunningState,
  PlanSchedule,
  RetentionOfferState,
  ScheduledPlanChange,
  SubscriptionState,
  SubscriptionWorkflowInput,
  TimelineEntry,
} from '../definitions';

/** Kept in the query result and carried across runs; bounded so continue-as-new input stays small. */
const TIMELINE_LIMIT = 50;

export interface SubscriptionRun {
  readonly input: SubscriptionWorkflowInput;
  /** The billing interval periods are placed with: the plan's (`restartCalendar` when a plan brings another one). */
  interval: BillingInterval;
  /** Only set on the first run of a plan with a trial. */
  readonly trialEnd: Date | null;
  /** Whether this run restarts inside a period it already invoiced. */
  readonly periodOpened: boolean;
  /** The period's position from `billingAnchor`, counted in `interval`s. */
  periodIndex: number;
  readonly timeline: TimelineEntry[];
  /** Plan id -> whether that plan meters usage, for every plan version this run has billed under. */
  readonly metersByPlan: Map<string, boolean>;

  // Carried across runs.
  plan: PlanSchedule;
  status: SubscriptionStatus;
  /** Where the calendar of periods starts: period `anchorPeriodIndex` begins here (see `periodOnCalendar`). */
  billingAnchor: Date;
  anchorPeriodIndex: number;
  /** The start of the period this run bills while it lies before the anchor (a resume restarted the calendar at its end). */
  movedPeriodStart: Date | null;
  /** Start of the usage not yet closed, and the plan version it is rated under. */
  usageOpenSince: Date;
  usagePlanId: string;
  pendingCancellation: CancelRequest | null;
  scheduledChange: ScheduledPlanChange | null;
  discount: ActiveDiscount | null;

  // This run only, but what a handover keeps (`heldAtHandover`): the offer, the pause, mid-period the last invoice
  // and the checks due.
  currentPeriod: BillingPeriod | null;
  /** A cancellation that takes effect now: the main loop ends the subscription at its next step. */
  cancelNow: CancelRequest | null;
  /** When that cancellation was accepted: where it takes effect, however late the main loop gets to it. */
  cancelNowAt: Date | null;
  /**
   * When the pending cancellation takes effect, if not at the period's end: one accepted after that end (held by an
   * open retention offer or dunning, or a worker behind) takes effect as accepted (./transitions.ts). Never carried:
   * the boundary it waits for has passed, so this run ends the subscription.
   */
  pendingCancellationEffectiveAt: Date | null;
  retentionOffer: RetentionOfferState | null;
  winBackOfferExpiresAt: string | null;
  winBackAccepted: boolean;
  pausedAt: Date | null;
  pausedUntil: string | null;
  /**
   * The current period's end before the calendar moved (a pause or a suspension given back, ./transitions.ts
   * `moveCalendarBy`), while the row does not know yet: the next status record carries the move. Transient: set and
   * cleared within one step.
   */
  periodEndBeforeMove?: Date | null;
  resumeRequested: boolean;
  dunning: DunningState | null;
  unpaidInvoice: PeriodInvoiceSummary | null;
  /** False after a decline that retrying the same payment method cannot fix (expired card). */
  unpaidRetryable: boolean;
  /** Invoices declined while another was in dunning: dunned after it, in turn (./collection.ts). */
  awaitingDunning: { invoice: PeriodInvoiceSummary; retryable: boolean }[];
  /** The subscription has ended and only collects what it left unpaid (./collection.ts `collectAfterTheEnd`). */
  collectingAfterTheEnd: boolean;
  paymentMethodUpdated: boolean;
  lastInvoice: PeriodInvoiceSummary | null;
  usageEventsReported: number;
  spendingCheckDue: boolean;
  /** A usage threshold signal arrived: the main loop asks for a threshold invoice (./thresholds.ts). */
  thresholdCheckDue: boolean;
  /** A step that failed deterministically and waits for ops (./attention.ts); never carried across runs. */
  attention: AttentionState | null;
  retryRequested: boolean;
  /** Lifecycle updates take effect one at a time, in arrival order (see ./turns.ts). */
  readonly turns: { issued: number; serving: number };
  /** True while the period is being opened (grace wait, usage close, invoice, first charge): no pause then. */
  openingPeriod: boolean;
  /** True from a threshold invoice's write until its first charge has answered (./thresholds.ts); run state only. */
  thresholdCharging: boolean;
  /** Patches this run takes (see `patchTaken`), handed to the next run so that it takes them without a marker. */
  readonly patchesTaken: Set<string>;
}

/** The run's state from its input: a fresh subscription, or the state the previous run carried over. */
export function startRun(input: SubscriptionWorkflowInput): SubscriptionRun {
  const carried = input.carried;
  const plan = input.plan;
  const startAt = new Date(input.startAt);
  // Later runs only show it (the trial is waited out by the first run alone); carried before it was, it is unknown.
  const trialEnd = carried ? (carried.trialEnd ? new Date(carried.trialEnd) : null) : plan.trialPeriod ? addIntervals(startAt, parseInterval(plan.trialPeriod), 1) : null;
  const calendar: Calendar = carried ? carriedCalendarOf(carried) : { billingAnchor: trialEnd ?? startAt, anchorPeriodIndex: 0, movedPeriodStart: null };
  return {
    input,
    interval: parseInterval(plan.billingInterval),
    trialEnd,
    periodOpened: carried?.periodOpened ?? false,
    periodIndex: carried?.periodIndex ?? 0,
    timeline: [...(carried?.timeline ?? [])],
    metersByPlan: new Map([[plan.planId, plan.hasUsageCharges]]),
    plan,
    status: carried?.status ?? 'scheduled',
    ...calendar,
    usageOpenSince: carried ? new Date(carried.usageOpenSince) : calendar.billingAnchor,
    usagePlanId: carried?.usagePlanId ?? plan.planId,
    pendingCancellation: carried?.pendingCancellation ?? null,
    scheduledChange: carried?.scheduledChange ?? null,
    discount: carried?.discount ?? null,
    currentPeriod: null,
    cancelNow: null,
    cancelNowAt: null,
    pendingCancellationEffectiveAt: null,
    retentionOffer: carried?.retentionOffer ?? null,
    winBackOfferExpiresAt: null,
    winBackAccepted: false,
    pausedAt: carried?.pause ? new Date(carried.pause.pausedAt) : null,
    pausedUntil: carried?.pause?.pausedUntil ?? null,
    resumeRequested: carried?.pause?.resumeRequested ?? false,
    dunning: null,
    unpaidInvoice: null,
    unpaidRetryable: true,
    awaitingDunning: [],
    collectingAfterTheEnd: false,
    paymentMethodUpdated: false,
    lastInvoice: carried?.lastInvoice ?? null,
    usageEventsReported: 0,
    spendingCheckDue: carried?.spendingCheckDue ?? false,
    thresholdCheckDue: carried?.thresholdCheckDue ?? false,
    attention: null,
    retryRequested: false,
    turns: { issued: 0, serving: 0 },
    openingPeriod: false,
    thresholdCharging: false,
    patchesTaken: new Set(carried?.patches ?? []),
  };
}

export const bounds = (period: { start: Date; end: Date }): PeriodBounds => ({ start: period.start.toISOString(), end: period.end.toISOString() });
export const nowIso = (): string => new Date().toISOString();
export const msUntil = (instant: Date | string): number => Math.max(0, new Date(instant).getTime() - Date.now());

/** Adds a line to the timeline ops and the API read; the oldest lines drop off past the limit. */
export function note(run: SubscriptionRun, event: string, detail?: string): void {
  run.timeline.push({ at: nowIso(), event, ...(detail ? { detail } : {}) });
  if (run.timeline.length > TIMELINE_LIMIT) run.timeline.splice(0, run.timeline.length - TIMELINE_LIMIT);
}

/** Whether a plan version meters usage; a plan this run has not seen is assumed to. */
export function planMeters(run: SubscriptionRun, planId: string): boolean {
  return run.metersByPlan.get(planId) ?? true;
}

/** The period this run bills; set once the first run's start and trial are behind it. */
export function periodOf(run: SubscriptionRun): BillingPeriod {
  return run.currentPeriod!;
}

/** Where a subscription's periods are placed from (./transitions.ts `moveCalendarBy` says how a resume moves it). */
export interface Calendar {
  readonly billingAnchor: Date;
  /** The index of the period that starts at the anchor. */
  readonly anchorPeriodIndex: number;
  /** The start of the one period before the anchor that is still billed: the current one, whose moved end is the anchor. */
  readonly movedPeriodStart: Date | null;
}

/** The calendar a run hands over (`carriedState`); the restart's fields are absent in histories recorded before it. */
function carriedCalendarOf(carried: CarriedState): Calendar {
  return {
    billingAnchor: new Date(carried.billingAnchor),
    anchorPeriodIndex: carried.anchorPeriodIndex ?? 0,
    movedPeriodStart: carried.movedPeriodStart ? new Date(carried.movedPeriodStart) : null,
  };
}

/**
 * Period `index` of a calendar: counted in intervals from the anchor, each boundary from the anchor itself (month-end
 * clamping from its day, domain/periods.ts), so that Mar 31 gives Apr 30, May 31. The period before the anchor is the
 * one a resume moved: from its moved start to the anchor.
 */
export function periodOnCalendar(calendar: Calendar, interval: BillingInterval, index: number): BillingPeriod {
  if (index < calendar.anchorPeriodIndex) return { index, start: calendar.movedPeriodStart!, end: calendar.billingAnchor };
  return { ...billingPeriod(calendar.billingAnchor, interval, index - calendar.anchorPeriodIndex), index };
}

/**
 * A plan with another billing interval took effect as the current period opens: its calendar starts there, as
 * period 0 of a new anchor. Counted on from the old anchor and index in the new interval, the periods would jump
 * (monthly -> yearly: index 2 is two years on) or fall back into time already billed (yearly -> monthly: index 2 is
 * the first year's March), and this period would keep the old interval's length.
 */
export function restartCalendar(run: SubscriptionRun): void {
  const start = periodOf(run).start;
  run.interval = parseInterval(run.plan.billingInterval);
  run.billingAnchor = start;
  run.anchorPeriodIndex = 0;
  run.movedPeriodStart = null;
  run.periodIndex = 0;
  run.currentPeriod = billingPeriod(start, run.interval, 0);
}

/** The status to return to when an offer is settled: still past due while an invoice is unpaid. */
export function standingStatus(run: SubscriptionRun): SubscriptionStatus {
  return run.unpaidInvoice ? 'past_due' : 'active';
}

export function snapshot(run: SubscriptionRun): SubscriptionState {
  const period = run.currentPeriod;
  return {
    subscriptionId: run.input.subscriptionId,
    customerId: run.input.customerId,
    planCode: run.plan.planCode,
    status: run.status,
    trialEnd: run.trialEnd?.toISOString() ?? null,
    currentPeriod: period && { index: period.index, ...bounds(period) },
    pendingCancellation: run.pendingCancellation,
    scheduledChange: run.scheduledChange,
    retentionOffer: run.retentionOffer,
    discount: run.discount,
    pausedUntil: run.pausedUntil,
    dunning: run.dunning,
    lastInvoice: run.lastInvoice,
    usageEventsReported: run.usageEventsReported,
    attention: run.attention,
    timeline: [...run.timeline],
  };
}

type SubscriptionWorkflowFunction = (input: SubscriptionWorkflowInput) => Promise<SubscriptionState>;

/** Ends this run and starts the next one with `carried`, on the plan now in force. Never from inside a handler. */
export function continueWith(run: SubscriptionRun, carried: CarriedState): Promise<never> {
  return continueAsNew<SubscriptionWorkflowFunction>({ ...run.input, plan: run.plan, carried });
}

/**
 * The cheaper period step (docs/benchmarks.md, "What a period costs"): the period's first charge runs as a local
 * activity (one marker instead of an activity task's three events and a workflow task), and the period end is
 * handed to the next run with continue-as-new instead of upserted by it. Histories recorded before replay without
 * it (patched); a run carried from one that took it takes it again without a patch marker of its own.
 */
export function takesCheaperPeriodStep(run: SubscriptionRun): boolean {
  return run.input.carried?.cheaperPeriodStep === true || patchTaken(run, CHEAPER_PERIOD_STEP);
}

/**
 * `patched(id)`, paid once per subscription instead of once per run: each `patched()` that is true records a marker
 * and a TemporalChangeVersion upsert (2 events) in its run. A run carried from one that took the patch was started
 * by code that knows it, so it takes it without asking, and so does a run that took the patch's generation
 * (`takeReleasedPatches`). Deterministic: the carried list is in the run's input. Every patch is asked through
 * here but one, the dunning wait's `afterRunningHandlers()` (./turns.ts), which older histories recorded bare.
 */
export function patchTaken(run: SubscriptionRun, id: string): boolean {
  if (run.patchesTaken.has(id)) return true;
  const taken = patched(id);
  if (taken) run.patchesTaken.add(id);
  return taken;
}

/**
 * At a run's first task, before anything else: each released generation of patches (./patch-ids.ts) that the run
 * did not carry in whole, taken with one marker, so that no boundary of this subscription pays a marker for its
 * patches. Code that knows a generation always takes it. A history recorded before a generation has no marker for
 * it: replay gets false, and its patches are asked where their code is, as they were recorded. Deterministic: the
 * carried list is in the run's input.
 */
export function takeReleasedPatches(run: SubscriptionRun): void {
  for (const generation of PATCH_GENERATIONS) {
    if (generation.patches.every((id) => run.patchesTaken.has(id))) continue;
    if (patched(generation.id)) for (const id of generation.patches) run.patchesTaken.add(id);
  }
}

/** Continue-as-new from the main loop; behind the cheaper period step the next run starts showing its period end. */
export function continueToNextPeriod(run: SubscriptionRun, carried: CarriedState): Promise<never> {
  if (!takesCheaperPeriodStep(run)) return continueWith(run, carried);
  const next = periodOnCalendar(carriedCalendarOf(carried), parseInterval(run.plan.billingInterval), carried.periodIndex);
  const typedSearchAttributes = workflowInfo().typedSearchAttributes.updateCopy([{ key: SEARCH_ATTRIBUTES.periodEnd, value: next.end }]);
  return makeContinueAsNewFunc<SubscriptionWorkflowFunction>({ typedSearchAttributes })({ ...run.input, plan: run.plan, carried });
}

/** A run past this many history events (long dunning, many plan changes) continues as new at its next boundary. */
export const HISTORY_BUDGET = 150;

/**
 * Whether the period that starts now opens in this run instead of a fresh one (docs/benchmarks.md, "Two periods
 * per run"). A continue-as-new costs the server a run close and a run start (a new visibility row) and the worker
 * a fresh workflow instance and one more workflow task; a longer run costs a longer replay whenever the worker has
 * evicted it before a boundary (a monthly subscription usually is), about as much per replayed period as the period
 * cost live. So a run covers two periods: an evicted run replays one more period every second boundary, about what
 * the continue-as-new it saves costs, and a cached one pays half the continue-as-news. Which boundaries change runs
 * alternates with the period and a parity of the subscription id, so in a calendar-billing burst half the
 * subscriptions change runs, not all at once.
 *
 * Deterministic on replay: the period index and id are state, the history length and the server's suggestion
 * those of the workflow task being (re)played. Histories recorded before continued as new at every boundary and
 * replay so (patched).
 */
export function nextPeriodInThisRun(run: SubscriptionRun, nextPeriodIndex: number): boolean {
  const info = workflowInfo();
  if (info.continueAsNewSuggested || info.historyLength >= HISTORY_BUDGET) return false;
  if (continuesAsNewAt(run.input.subscriptionId, nextPeriodIndex)) return false;
  return patchTaken(run, PERIODS_SHARE_A_RUN);
}

/** Whether the subscription changes runs at the boundary into period `nextPeriodIndex`: every other boundary, by id. */
export function continuesAsNewAt(subscriptionId: string, nextPeriodIndex: number): boolean {
  let parity = 0;
  for (let index = 0; index < subscriptionId.length; index += 1) parity += subscriptionId.charCodeAt(index);
  return (nextPeriodIndex + parity) % 2 === 0;
}

/**
 * Turns the run into the one continue-as-new would have started with `carried`: same state, same plan and billing
 * interval, the same run-only fields reset. Only the lifecycle-update turns survive (all handlers have finished, so
 * their counters are equal; handlers registered on `run` keep reading this object).
 */
export function rollOver(run: SubscriptionRun, carried: CarriedState): void {
  const { turns } = run;
  Object.assign(run, startRun({ ...run.input, plan: run.plan, carried }), { turns });
}

/** The state the next run of the same subscription picks up from. */
export function carriedState(run: SubscriptionRun, boundaryReached: boolean): CarriedState {
  return {
    status: run.status,
    billingAnchor: run.billingAnchor.toISOString(),
    periodIndex: boundaryReached ? run.periodIndex + 1 : run.periodIndex,
    ...carriedCalendar(run, boundaryReached),
    periodOpened: !boundaryReached,
    usageOpenSince: run.usageOpenSince.toISOString(),
    usagePlanId: run.usagePlanId,
    pendingCancellation: run.pendingCancellation,
    scheduledChange: run.scheduledChange,
    discount: run.discount,
    timeline: run.timeline,
    ...(run.trialEnd ? { trialEnd: run.trialEnd.toISOString() } : {}),
    cheaperPeriodStep: true,
    ...heldAtHandover(run, boundaryReached),
    patches: [...run.patchesTaken],
  };
}

/**
 * The calendar's restart, when a resume made one (absent otherwise, as in histories recorded before it): the anchor's
 * index, and mid-period the moved start of the period the next run goes on billing.
 */
function carriedCalendar(run: SubscriptionRun, boundaryReached: boolean): Pick<CarriedState, 'anchorPeriodIndex' | 'movedPeriodStart'> {
  if (run.anchorPeriodIndex === 0) return {};
  const stillBefore = !boundaryReached && run.periodIndex < run.anchorPeriodIndex;
  return { anchorPeriodIndex: run.anchorPeriodIndex, ...(stillBefore && run.movedPeriodStart ? { movedPeriodStart: run.movedPeriodStart.toISOString() } : {}) };
}

/**
 * What the run holds for the customer beyond its period, for the next run to go on with as if nothing had handed
 * over: an offer waiting for its answer (its expiry), a pause (its end, the time it moves the calendar by, a resume
 * already asked); mid-period also the last invoice (the state query, the ops details) and the checks a usage summary
 * asked for. At a boundary those belong to the period that ended. Only a handover the server suggests mid-period (or
 * a handler finishing during one) leaves an offer or a pause here; before, they were dropped (patch, asked only then).
 */
function heldAtHandover(run: SubscriptionRun, boundaryReached: boolean): Partial<CarriedState> {
  const offer = run.retentionOffer;
  const pausedAt = run.status === 'paused' ? run.pausedAt : null;
  const midPeriod = !boundaryReached;
  const held = offer !== null || pausedAt !== null || (midPeriod && (run.lastInvoice !== null || run.spendingCheckDue || run.thresholdCheckDue));
  if (!held || !patchTaken(run, HANDOVER_KEEPS_RUN_STATE)) return {};
  return {
    ...(offer ? { retentionOffer: offer } : {}),
    ...(pausedAt ? { pause: { pausedAt: pausedAt.toISOString(), pausedUntil: run.pausedUntil, resumeRequested: run.resumeRequested } } : {}),
    ...(midPeriod && run.lastInvoice ? { lastInvoice: run.lastInvoice } : {}),
    ...(midPeriod && run.spendingCheckDue ? { spendingCheckDue: true as const } : {}),
    ...(midPeriod && run.thresholdCheckDue ? { thresholdCheckDue: true as const } : {}),
  };
}
