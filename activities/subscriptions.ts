import type { Database } from '../store/database';
import { enqueueOutboxEvent, writeAudit } from '../store/outbox';
import type { SubscriptionStatus } from '../workflows/definitions';

export interface SubscriptionStatusChange {
  readonly subscriptionId: string;
  readonly status: SubscriptionStatus;
  readonly at: string;
  readonly reason: string | null;
  readonly trialEnd: string | null;
}

export function createSubscriptionActivities(db: Database) {
  return {
    /** Mirrors a workflow status change into Postgres, with its audit record and customer-facing event. */
    async recordSubscriptionStatus(change: SubscriptionStatusChange): Promise<void> {
      await db.transaction(async (trx) => {
        const updated = await trx('subscriptions')
          .where({ id: change.subscriptionId })
          .whereNot({ status: change.status })
          .update({
            status: change.status,
            trial_end: change.trialEnd ? new Date(change.trialEnd) : null,
            ...(change.status === 'canceled' ? { canceled_at: new Date(change.at), cancel_reason: change.reason } : {}),
            updated_at: trx.fn.now(),
          });
        if (updated === 0) return; // already recorded by an earlier attempt of this activity
        await writeAudit(trx, {
          actor: 'workflow',
          action: `subscription.${change.status}`,
          subjectType: 'subscription',
          subjectId: change.subscriptionId,
          reason: change.reason,
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
  };
}
