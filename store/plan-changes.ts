/**
 * Immediate plan changes keyed by the request that asked for them (see migrations/0330_create_plan_changes.ts).
 */
import type { Knex } from 'knex';

export interface PlanChangeRow {
  id: string;
  subscription_id: string;
  request_key: string;
  change_at: Date;
  old_plan_id: string;
  new_plan_id: string;
  requested_by: string;
  created_at: Date;
}

export interface PlanChangeIntent {
  readonly subscriptionId: string;
  readonly requestKey: string;
  /** The instant the caller proposes (workflow time); the stored one wins for a request already recorded. */
  readonly changeAt: Date;
  readonly oldPlanId: string;
  readonly newPlanId: string;
  readonly requestedBy: string;
}

/**
 * Records the change once per (subscription, request key) and returns the stored row: a repeat of the same request
 * gets the instant chosen the first time. A new change never shares an instant with an earlier one of the same
 * subscription (it moves 1 ms past the latest), so each change keeps its own proration invoice.
 */
export async function recordPlanChangeOnce(db: Knex, intent: PlanChangeIntent): Promise<PlanChangeRow> {
  return db.transaction(async (trx) => {
    // Serializes the subscription's changes, so the latest instant read below stays the latest.
    await trx('subscriptions').where({ id: intent.subscriptionId }).forUpdate().first('id');
    const existing = await trx<PlanChangeRow>('plan_changes').where({ subscription_id: intent.subscriptionId, request_key: intent.requestKey }).first();
    if (existing) return existing;
    const latest = await trx<PlanChangeRow>('plan_changes').where({ subscription_id: intent.subscriptionId }).max<{ max: Date | null }>('change_at as max').first();
    const after = latest?.max ? latest.max.getTime() + 1 : -Infinity;
    const changeAt = new Date(Math.max(intent.changeAt.getTime(), after));
    const [row] = await trx<PlanChangeRow>('plan_changes')
      .insert({
        subscription_id: intent.subscriptionId,
        request_key: intent.requestKey,
        change_at: changeAt,
        old_plan_id: intent.oldPlanId,
        new_plan_id: intent.newPlanId,
        requested_by: intent.requestedBy,
      })
      .returning('*');
    return row;
  });
}

/**
 * Where the open usage stretch starts at the latest: the period's start, or the last immediate plan change after it
 * (its proration invoice billed the usage before it). What the usage views, the wallet and the thresholds count from.
 */
export async function latestStretchStart(db: Knex | Knex.Transaction, subscriptionId: string, periodStart: Date): Promise<Date> {
  const row = await db('plan_changes').where({ subscription_id: subscriptionId }).max<{ latest: Date | null }>('change_at as latest').first();
  return row?.latest && row.latest > periodStart ? row.latest : periodStart;
}
