/**
 * Everything a client needs to talk to the billing workflows: ids, task queue, signals, updates, queries and
 * search attributes. The API imports this module without importing workflow code.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { rerateWorkflowId, type RerateState } from '../contract/rerating';
import type { PeriodInvoiceSummary, SubscriptionStatus } from '../contract/subscription';
import type { PlanScheduleTerms } from '../domain/plan-terms';

// Shared with the activities through the contract; re-exported so clients keep one import for the workflows.
export type { PeriodInvoiceSummary, RerateState, SubscriptionStatus };

export const TASK_QUEUE = 'billing';

export function subscriptionWorkflowId(subscriptionId: string): string {
  return `subscription:${subscriptionId}`;
}

/** What ops filter on in the Temporal UI. Registered on the dev server at start and in docker-compose. */
export const SEARCH_ATTRIBUTES = {
  customerId: defineSearchAttributeKey('BillingCustomerId', SearchAttributeType.KEYWORD),
  planCode: defineSearchAttributeKey('BillingPlanCode', SearchAttributeType.KEYWORD),
  status: defineSearchAttributeKey('BillingStatus', SearchAttributeType.KEYWORD),
  periodEnd: defineSearchAttributeKey('BillingPeriodEnd', SearchAttributeType.DATETIME),
  pastDue: defineSearchAttributeKey('BillingPastDue', SearchAttributeType.BOOL),
  scheduledChange: defineSearchAttributeKey('BillingScheduledChange', SearchAttributeType.KEYWORD),
} as const;

/** The same attributes in the `name -> type` form servers take when registering them. */
export const SEARCH_ATTRIBUTE_REGISTRATIONS: Record<string, 'Keyword' | 'Datetime' | 'Bool'> = {
  BillingCustomerId: 'Keyword',
  BillingPlanCode: 'Keyword',
  BillingStatus: 'Keyword',
  BillingPeriodEnd: 'Datetime',
  BillingPastDue: 'Bool',
  BillingScheduledChange: 'Keyword',
};

/** The plan terms the workflow needs to schedule periods; prices stay in Postgres and are read by activities. */
export type PlanSchedule = PlanScheduleTerms;

export interface SubscriptionWorkflowInput {
  readonly subscriptionId: string;
  readonly customerId: string;
  /** For ops in the Temporal UI (workflows/subscription/ops-view.ts); absent on workflows started before it. */
  readonly customerName?: string;
  readonly plan: PlanSchedule;
  /** When the subscription starts (trial or first period); ISO instant. */
  readonly startAt: string;
  /** Carried across continue-as-new; absent on the first run. */
  readonly carried?: CarriedState;
}

/**
 * The one-line summary ops see for a subscription's workflow in the Temporal UI ("Acme · ai-pro · active"). The API
 * gives it without a status at start (a start summary never changes); the workflow's current details repeat it
 * with the live status (workflows/subscription/ops-view.ts).
 */
export function subscriptionSummary(input: Pick<SubscriptionWorkflowInput, 'customerId' | 'customerName'> & { readonly planCode: string }, status?: string): string {
  return [input.customerName ?? `customer ${input.customerId}`, input.planCode, ...(status ? [status] : [])].join(' · ');
}

export interface TimelineEntry {
  readonly at: string;
  readonly event: string;
  readonly detail?: string;
}

export interface CarriedState {
  readonly status: SubscriptionStatus;
  /**
   * First instant of paid period `anchorPeriodIndex` (0: the trial end, or the start), from which the periods are
   * placed. A resume restarts the calendar at the current period's moved end (workflows/subscription/transitions.ts
   * `moveCalendarBy`); before that patch, the anchor moved later by the paused time.
   */
  readonly billingAnchor: string;
  /** The period this run bills. */
  readonly periodIndex: number;
  /** The index of the period that starts at `billingAnchor`; absent: 0. */
  readonly anchorPeriodIndex?: number;
  /** Set while the period this run bills lies before the anchor (a resume moved it and restarted the calendar at its end): its start. */
  readonly movedPeriodStart?: string;
  /** True when a run restarts inside a period it already invoiced (continue-as-new suggested). */
  readonly periodOpened: boolean;
  /** Start of the usage not yet closed, and the plan version it is rated under. */
  readonly usageOpenSince: string;
  readonly usagePlanId: string;
  readonly pendingCancellation: CancelRequest | null;
  readonly scheduledChange: ScheduledPlanChange | null;
  readonly discount: ActiveDiscount | null;
  readonly timeline: readonly TimelineEntry[];
  /** When the trial ended, if there was one: the state query and the status records show it in every later run. */
  readonly trialEnd?: string;
  /**
   * Set by runs that take the cheaper period step: the next run takes it too without a patch marker of its own
   * (a marker and its TemporalChangeVersion upsert would cost two events every period). Only workflow code sets
   * it: a client (the import) cannot know which code the worker that runs the subscription has.
   */
  readonly cheaperPeriodStep?: true;
  /** The patches the previous run took (workflows/subscription/state.ts `patchTaken`): taken again without a marker. */
  readonly patches?: readonly string[];
  /** A retention offer still waiting for its answer (a handover the server suggested mid-period). */
  readonly retentionOffer?: RetentionOfferState;
  /** A pause still in force: since when, until when (null: until resumed), and whether a resume was asked already. */
  readonly pause?: CarriedPause;
  /** Mid-period only: the invoice the state query and ops details show, and the checks a usage summary asked for. */
  readonly lastInvoice?: PeriodInvoiceSummary;
  readonly spendingCheckDue?: true;
  readonly thresholdCheckDue?: true;
}

export interface CarriedPause {
  readonly pausedAt: string;
  readonly pausedUntil: string | null;
  readonly resumeRequested: boolean;
}

export interface ScheduledPlanChange {
  readonly plan: PlanSchedule;
  readonly effectiveAt: string;
  readonly requestedBy: string;
}

/** A retention discount being used up: percent off the next `periodsLeft` invoices. */
export interface ActiveDiscount {
  readonly percentOff: string;
  readonly periodsLeft: number;
}

export interface SubscriptionState {
  readonly subscriptionId: string;
  readonly customerId: string;
  readonly planCode: string;
  readonly status: SubscriptionStatus;
  readonly trialEnd: string | null;
  readonly currentPeriod: { readonly index: number; readonly start: string; readonly end: string } | null;
  readonly pendingCancellation: CancelRequest | null;
  readonly scheduledChange: ScheduledPlanChange | null;
  readonly retentionOffer: RetentionOfferState | null;
  readonly discount: ActiveDiscount | null;
  readonly pausedUntil: string | null;
  readonly dunning: DunningState | null;
  readonly lastInvoice: PeriodInvoiceSummary | null;
  /** Accepted usage events reported to this run by the API's coalesced summaries (informational). */
  readonly usageEventsReported: number;
  /** The failed step while the status is `needs_attention`; null otherwise. */
  readonly attention: AttentionState | null;
  readonly timeline: readonly TimelineEntry[];
}

/** A billing step that failed deterministically: billing waits here until ops fix the data and ask for a retry. */
export interface AttentionState {
  /** The step that failed, e.g. `create_period_invoice`; a retry runs it again with the same request. */
  readonly step: string;
  /** The failure's type (e.g. `numeric_field_overflow`, `event_count_mismatch`) and message. */
  readonly errorType: string;
  readonly message: string;
  readonly since: string;
  /** How many times the step failed so far (each retry that fails again adds one). */
  readonly failures: number;
  /** True from a retry request until the step's next outcome. */
  readonly retrying: boolean;
}

export interface RetryFailedStepResult {
  readonly status: SubscriptionStatus;
  readonly step: string;
}

export interface CancelRequest {
  readonly at: 'now' | 'period_end';
  readonly reason: string;
  readonly requestedBy: string;
}

export interface CancelResult {
  readonly status: SubscriptionStatus;
  /** When the cancellation takes effect; null while a retention offer waits for an answer. */
  readonly effectiveAt: string | null;
  readonly retentionOffer?: RetentionOfferState;
}

export interface RetentionOfferState {
  readonly percentOff: string;
  readonly periods: number;
  readonly expiresAt: string;
  /** The cancellation that goes ahead if the offer is declined or expires. */
  readonly cancellation: CancelRequest;
}

export interface DunningState {
  readonly invoiceId: string;
  readonly attempt: number;
  readonly nextAttemptAt: string | null;
}

export interface PlanChangeRequest {
  readonly plan: PlanSchedule;
  readonly effective: 'immediate' | 'period_end';
  readonly requestedBy: string;
}

export interface PlanChangeResult {
  readonly effective: 'immediate' | 'period_end';
  readonly effectiveAt: string;
  readonly planCode: string;
  /** The proration invoice of an immediate change. */
  readonly invoice: PeriodInvoiceSummary | null;
}

export interface PauseRequest {
  /** Resume automatically at this instant; paused until a resume request when absent. */
  readonly until: string | null;
  readonly requestedBy: string;
}

export interface OfferAnswer {
  readonly accept: boolean;
  readonly requestedBy: string;
}

export const subscriptionStateQuery = defineQuery<SubscriptionState>('subscriptionState');
export const cancelSubscriptionUpdate = defineUpdate<CancelResult, [CancelRequest]>('cancelSubscription');
export const changePlanUpdate = defineUpdate<PlanChangeResult, [PlanChangeRequest]>('changePlan');
export const withdrawScheduledChangeUpdate = defineUpdate<{ withdrawn: boolean }, [{ requestedBy: string }]>('withdrawScheduledChange');
export const pauseSubscriptionUpdate = defineUpdate<{ status: SubscriptionStatus; pausedUntil: string | null }, [PauseRequest]>('pauseSubscription');
export const resumeSubscriptionUpdate = defineUpdate<{ status: SubscriptionStatus }, [{ requestedBy: string }]>('resumeSubscription');
export const answerRetentionOfferUpdate = defineUpdate<{ status: SubscriptionStatus }, [OfferAnswer]>('answerRetentionOffer');
export const answerWinBackOfferUpdate = defineUpdate<{ status: SubscriptionStatus }, [OfferAnswer]>('answerWinBackOffer');
/** Ops fixed what made a billing step fail: run it again (rejected with `no_failed_step` unless one waits). */
export const retryFailedStepUpdate = defineUpdate<RetryFailedStepResult, [{ requestedBy: string }]>('retryFailedStep');
/** The customer's payment method changed: dunning retries at once. */
export const paymentMethodUpdatedSignal = defineSignal<[]>('paymentMethodUpdated');

/** Workflow type names, so clients can start workflows without importing workflow code. */
export const SUBSCRIPTION_WORKFLOW_TYPE = 'subscriptionWorkflow';

/**
 * A coalesced usage summary. The API sends at most one per subscription per window (never one per event), so
 * history stays small however many events arrive. Usage itself lives in Postgres.
 */
export interface UsageRecordedSummary {
  readonly eventCount: number;
  readonly latestEventAt: string;
}

export const usageRecordedSignal = defineSignal<[UsageRecordedSummary]>('usageRecorded');

/**
 * Progressive billing: the API saw the open usage reach a usage threshold not invoiced yet (docs/pricing.md). A
 * hint only: the workflow re-checks in an activity, so a stale or repeated signal invoices nothing.
 */
export interface UsageThresholdReached {
  readonly thresholdIndex: number;
  /** The accrued amount the API saw, for the timeline. */
  readonly accrued: string;
}

export const usageThresholdReachedSignal = defineSignal<[UsageThresholdReached]>('usageThresholdReached');

// ---- Re-rating -------------------------------------------------------------------------------------------

export const RERATE_WORKFLOW_TYPE = 'rerateWorkflow';

export { rerateWorkflowId };

export interface RerateWorkflowInput {
  readonly rerateId: string;
  readonly subscriptionId: string;
  readonly invoiceId: string;
  /** How long a proposal waits for a decision before it expires (ISO-8601). */
  readonly decisionWindow: string;
}

export interface RerateDecision {
  readonly approve: boolean;
  readonly by: string;
  readonly reason: string;
}

export const decideRerateUpdate = defineUpdate<RerateState, [RerateDecision]>('decideRerate');
export const rerateStateQuery = defineQuery<RerateState>('rerateState');

// The per-customer wallet workflow (top-ups, auto-recharge, grant expiry timers).
export { WALLET_WORKFLOW_TYPE, walletWorkflowId, walletChangedSignal } from './wallet-definitions';
