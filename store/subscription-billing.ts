/**
 * The subscription columns billing writes: the current period an invoice opens, the usage cap a spending check
 * sets and the budget a customer sets. (The subscription aggregate itself lives in store/subscriptions.ts.)
 */
import type { Knex } from 'knex';
import { queryPrepared } from './prepared-statements';

type Db = Knex | Knex.Transaction;

/** The period an opening invoice bills becomes the subscription's current period. */
export async function startSubscriptionPeriod(trx: Knex.Transaction, subscriptionId: string, period: { start: string; end: string }): Promise<void> {
  // Prepared: it runs with every period invoice (store/prepared-statements.ts).
  await queryPrepared(
    trx,
    'subscription-start-period',
    'UPDATE subscriptions SET current_period_start = $2, current_period_end = $3, updated_at = now() WHERE id = $1',
    [subscriptionId, new Date(period.start), new Date(period.end)],
  );
}

/** Past the plan's hard cap: ingestion refuses the subscription's usage until `until` (the period end). */
export async function capUsageUntil(db: Db, subscriptionId: string, until: Date): Promise<void> {
  await db('subscriptions').where({ id: subscriptionId }).update({ usage_capped_until: until });
}

/**
 * The cap no longer applies (an immediate plan change to a plan whose cap the period's spend has not reached, or
 * that has none): ingestion accepts the subscription's usage again.
 */
export async function liftUsageCap(db: Db, subscriptionId: string): Promise<void> {
  await db('subscriptions').where({ id: subscriptionId }).whereNotNull('usage_capped_until').update({ usage_capped_until: null });
}

/** A customer-set spending budget per period (null removes it) with its alert thresholds in percent. */
export async function setSpendingBudget(db: Db, subscriptionId: string, amount: string | null, thresholds: readonly string[] | null): Promise<void> {
  await db('subscriptions')
    .where({ id: subscriptionId })
    .update({ budget_amount: amount, alert_thresholds: thresholds === null ? null : JSON.stringify(thresholds) });
}

/** The plan version a subscription is on now. */
export async function currentPlanIdOf(db: Db, subscriptionId: string): Promise<string> {
  const row: { plan_id: string } = await db('subscriptions').where({ id: subscriptionId }).first('plan_id');
  return row.plan_id;
}
