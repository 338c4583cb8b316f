import type { Database } from '../store/database';
import { answerOpenOffer, recordOffer } from '../store/offers';
import { enqueueSubscriptionEvent, mirrorSubscriptionStatus, recordUsageEnd, switchSubscriptionPlan } from '../store/subscriptions';
import type { CustomerNotification, OfferAnswerRecord, OfferRecord, PlanChangeRecord, SubscriptionStatusChange } from '../contract/subscription';

export type { SubscriptionStatusChange, PlanChangeRecord, OfferRecord, OfferAnswerRecord, CustomerNotification };

export function createSubscriptionActivities(db: Database) {
  return {
    /** Mirrors a workflow status change into Postgres, with its audit record and customer-facing event. */
    async recordSubscriptionStatus(change: SubscriptionStatusChange): Promise<void> {
      await mirrorSubscriptionStatus(db, change);
    },

    /** Where the subscription's billable usage stops, recorded when the workflow decides its end (ingestion reads it). */
    async recordUsageEnd(request: { subscriptionId: string; usageEndsAt: string }): Promise<void> {
      await recordUsageEnd(db, request.subscriptionId, new Date(request.usageEndsAt));
    },

    /** Points the subscription at its new plan version once the workflow applies a change. */
    async applyPlanChange(change: PlanChangeRecord): Promise<void> {
      await switchSubscriptionPlan(db, change);
    },

    /**
     * Records an offer and tells the customer. A retention offer is made at most once in twelve months per
     * customer: returns `offered: false` when one was made more recently.
     */
    async makeCustomerOffer(offer: OfferRecord): Promise<{ offered: boolean; expiresAt: string }> {
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
