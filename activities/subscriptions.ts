import type { Database } from '../store/database';
import { answerOpenOffer, recordOffer } from '../store/offers';
import { enqueueSubscriptionEvent, mirrorSubscriptionStatus, switchSubscriptionPlan } from '../store/subscriptions';
import type { SubscriptionStatus } from '../workflows/definitions';

export interface SubscriptionStatusChange {
  readonly subscriptionId: string;
  readonly status: SubscriptionStatus;
  readonly at: string;
  readonly reason: string | null;
  readonly trialEnd: string | null;
  /** Ingestion refuses usage while set (paused under the reject policy, suspended). */
  readonly usageBlocked: boolean;
}

export interface PlanChangeRecord {
  readonly subscriptionId: string;
  readonly planId: string;
  readonly effective: 'immediate' | 'period_end';
  readonly at: string;
  readonly requestedBy: string;
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

export function createSubscriptionActivities(db: Database) {
  return {
    /** Mirrors a workflow status change into Postgres, with its audit record and customer-facing event. */
    async recordSubscriptionStatus(change: SubscriptionStatusChange): Promise<void> {
      await mirrorSubscriptionStatus(db, change);
    },

    /** Points the subscription at its new plan version once the workflow applies a change. */
    async applyPlanChange(change: PlanChangeRecord): Promise<void> {
      await switchSubscriptionPlan(db, change);
    },

    /**
     * Records an offer and tells the customer. A retention offer is made at most once in twelve months per
     * customer: returns `offered: false` when one was made more recently.
     */
    async makeCustomerOffer(offer: OfferRecord): Promise<{ offered: boolean }> {
      return recordOffer(db, offer);
    },

    async recordOfferAnswer(answer: OfferAnswerRecord): Promise<void> {
      await answerOpenOffer(db, answer);
    },

    /** A customer-facing event (trial ending, dunning step...) for the outbox to deliver. */
    async notifyCustomer(notification: CustomerNotification): Promise<void> {
      await enqueueSubscriptionEvent(db, notification);
    },
  };
}
