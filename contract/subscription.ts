/**
 * The subscription state both sides speak: the workflow decides it, activities record it in Postgres.
 */

export type SubscriptionStatus =
  | 'scheduled' // created with a future start date
  | 'trialing'
  | 'active'
  | 'past_due' // a charge failed; dunning retries it
  | 'suspended' // dunning gave up under the suspend policy: no new periods, usage rejected, until paid
  | 'paused'
  | 'retention_offered' // asked to cancel; an offer waits for an answer
  | 'pending_cancellation'
  | 'needs_attention' // a billing step failed in a way retrying cannot fix; waits for ops to fix the data and retry
  | 'canceled';

/** A finalized invoice as the workflow sees it: enough to charge it and to show it in the query result. */
export interface PeriodInvoiceSummary {
  readonly invoiceId: string;
  readonly number: string;
  readonly total: string;
  readonly currency: string;
  readonly status: string;
}

export interface SubscriptionStatusChange {
  readonly subscriptionId: string;
  readonly status: SubscriptionStatus;
  readonly at: string;
  readonly reason: string | null;
  readonly trialEnd: string | null;
  /** Ingestion refuses usage while set (paused under the reject policy, suspended). */
  readonly usageBlocked: boolean;
  /** The current period's end moved by a resume or a paid suspension since the row last heard: from, to (ISO instants). */
  readonly movedPeriodEnd?: { readonly from: string; readonly to: string };
  /**
   * Leaving `canceled` (a win-back restart): where the restarted run's usage stretch opens (ISO instant). The row
   * keeps [its old usage end, this) as a service gap that ingestion refuses: no invoice bills it.
   */
  readonly serviceResumesAt?: string;
}

export interface PlanChangeRecord {
  readonly subscriptionId: string;
  readonly planId: string;
  readonly effective: 'immediate' | 'period_end';
  readonly at: string;
  readonly requestedBy: string;
}

/**
 * An immediate plan change as first recorded, keyed by the request (the update id): the workflow's first step of
 * the change, so every later side effect uses the stored instant, the same on a retried workflow task.
 */
export interface PlanChangeIntentRecord {
  readonly subscriptionId: string;
  readonly requestKey: string;
  /** Proposed from workflow time; a request recorded before keeps its first instant. */
  readonly changeAt: string;
  readonly oldPlanId: string;
  readonly newPlanId: string;
  readonly requestedBy: string;
  /** The billing period the change splits (absent in older histories): its stretches share the allowances. */
  readonly periodStart?: string;
  readonly periodEnd?: string;
}

export interface RecordedPlanChange {
  readonly changeAt: string;
}

export interface OfferRecord {
  readonly subscriptionId: string;
  readonly customerId: string;
  readonly kind: 'retention' | 'win_back';
  readonly terms: Record<string, unknown>;
  /** Workflow time, so "once in twelve months" is judged on the subscription's own clock. */
  readonly at: string;
  readonly expiresAt: string;
}

export interface OfferAnswerRecord {
  readonly subscriptionId: string;
  readonly kind: 'retention' | 'win_back';
  readonly answer: 'accepted' | 'declined' | 'expired';
  readonly at: string;
  readonly requestedBy: string;
}

export interface CustomerNotification {
  readonly subscriptionId: string;
  readonly eventType: string;
  /** Same key, one notification: retried activities do not notify twice. */
  readonly dedupeKey: string;
  readonly payload: Record<string, unknown>;
}
