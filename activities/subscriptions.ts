import type { Database } from '../store/database';
import { enqueueOutboxEvent, writeAudit } from '../store/outbox';
import type { CustomerNotification, OfferAnswerRecord, OfferRecord, PlanChangeRecord, SubscriptionStatusChange } from '../contract/subscription';

export type { SubscriptionStatusChange, PlanChangeRecord, OfferRecord, OfferAnswerRecord, CustomerNotification };

const RETENTION_OFFER_COOLDOWN_MONTHS = 12;

export function createSubscriptionActivities(db: Database) {
  return {
    /** Mirrors a workflow status change into Postgres, with its audit record and customer-facing event. */
    async recordSubscriptionStatus(change: SubscriptionStatusChange): Promise<void> {
      await db.transaction(async (trx) => {
        const updated = await trx('subscriptions')
          .where({ id: change.subscriptionId })
          .where((query) => query.whereNot({ status: change.status }).orWhereNot({ usage_blocked: change.usageBlocked }))
          .update({
            status: change.status,
            usage_blocked: change.usageBlocked,
            trial_end: change.trialEnd ? new Date(change.trialEnd) : null,
            ...(change.status === 'canceled'
              ? { canceled_at: new Date(change.at), cancel_reason: change.reason }
              : { canceled_at: null, cancel_reason: null }),
            updated_at: trx.fn.now(),
          });
        if (updated === 0) return; // already recorded by an earlier attempt of this activity
        await writeAudit(trx, {
          actor: 'workflow',
          action: `subscription.${change.status}`,
          subjectType: 'subscription',
          subjectId: change.subscriptionId,
          reason: change.reason,
          details: { at: change.at },
        });
        await enqueueOutboxEvent(trx, {
          eventType: `subscription.${change.status}`,
          aggregateType: 'subscription',
          aggregateId: change.subscriptionId,
          dedupeKey: `subscription.${change.status}:${change.subscriptionId}:${change.at}`,
          payload: { subscriptionId: change.subscriptionId, status: change.status, at: change.at, reason: change.reason },
        });
      });
    },

    /** Points the subscription at its new plan version once the workflow applies a change. */
    async applyPlanChange(change: PlanChangeRecord): Promise<void> {
      await db.transaction(async (trx) => {
        const updated = await trx('subscriptions')
          .where({ id: change.subscriptionId })
          .whereNot({ plan_id: change.planId })
          .update({ plan_id: change.planId, updated_at: trx.fn.now() });
        if (updated === 0) return;
        await writeAudit(trx, {
          actor: change.requestedBy,
          action: 'subscription.plan_changed',
          subjectType: 'subscription',
          subjectId: change.subscriptionId,
          details: { planId: change.planId, effective: change.effective, at: change.at },
        });
        await enqueueOutboxEvent(trx, {
          eventType: 'subscription.plan_changed',
          aggregateType: 'subscription',
          aggregateId: change.subscriptionId,
          dedupeKey: `subscription.plan_changed:${change.subscriptionId}:${change.at}`,
          payload: { ...change },
        });
      });
    },

    /**
     * Records an offer and tells the customer. A retention offer is made at most once in twelve months per
     * customer: returns `offered: false` when one was made more recently.
     */
    async makeCustomerOffer(offer: OfferRecord): Promise<{ offered: boolean }> {
      return db.transaction(async (trx) => {
        // Serialize offers per customer so two concurrent cancellations cannot both get one.
        await trx.raw('SELECT pg_advisory_xact_lock(hashtext(?))', [`offer:${offer.customerId}`]);
        const existing = await trx('customer_offers').where({ subscription_id: offer.subscriptionId, kind: offer.kind, offered_at: new Date(offer.at) }).first();
        if (existing) return { offered: true }; // this very offer, recorded by an earlier attempt
        if (offer.kind === 'retention') {
          const since = new Date(offer.at);
          since.setUTCMonth(since.getUTCMonth() - RETENTION_OFFER_COOLDOWN_MONTHS);
          const recent = await trx('customer_offers')
            .where({ customer_id: offer.customerId, kind: 'retention' })
            .andWhere('offered_at', '>', since)
            .first();
          if (recent) return { offered: false };
        }
        await trx('customer_offers').insert({
          customer_id: offer.customerId,
          subscription_id: offer.subscriptionId,
          kind: offer.kind,
          terms: JSON.stringify(offer.terms),
          offered_at: new Date(offer.at),
          expires_at: new Date(offer.expiresAt),
        });
        await enqueueOutboxEvent(trx, {
          eventType: offer.kind === 'retention' ? 'retention.offered' : 'win_back.offered',
          aggregateType: 'subscription',
          aggregateId: offer.subscriptionId,
          dedupeKey: `${offer.kind}.offered:${offer.subscriptionId}:${offer.at}`,
          payload: { subscriptionId: offer.subscriptionId, terms: offer.terms, expiresAt: offer.expiresAt },
        });
        return { offered: true };
      });
    },

    async recordOfferAnswer(answer: OfferAnswerRecord): Promise<void> {
      await db.transaction(async (trx) => {
        const updated = await trx('customer_offers')
          .where({ subscription_id: answer.subscriptionId, kind: answer.kind })
          .whereNull('answer')
          .update({ answer: answer.answer, answered_at: new Date(answer.at) });
        if (updated === 0) return;
        await writeAudit(trx, {
          actor: answer.requestedBy,
          action: `${answer.kind}.${answer.answer}`,
          subjectType: 'subscription',
          subjectId: answer.subscriptionId,
        });
      });
    },

    /** A customer-facing event (trial ending, dunning step...) for the outbox to deliver. */
    async notifyCustomer(notification: CustomerNotification): Promise<void> {
      await db.transaction(async (trx) => {
        await enqueueOutboxEvent(trx, {
          eventType: notification.eventType,
          aggregateType: 'subscription',
          aggregateId: notification.subscriptionId,
          dedupeKey: notification.dedupeKey,
          payload: { subscriptionId: notification.subscriptionId, ...notification.payload },
        });
      });
    },
  };
}
