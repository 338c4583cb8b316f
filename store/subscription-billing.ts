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

/** A capped period: [from, until), from the period's start to its end. */
export interface CappedStretch {
  readonly from: Date;
  readonly until: Date;
}

/**
 * Past the plan's hard cap: ingestion refuses the subscription's usage stamped in the capped period, whenever it
 * arrives (the period's spend is what the cap bounds, so an event of any instant in it would bill above the cap).
 * The stretch is kept beside earlier ones (migration 0730); `usage_capped_until` tells the spending check it is done.
 */
export async function capUsageUntil(db: Db, subscriptionId: string, capped: CappedStretch): Promise<void> {
  const from = capped.from < capped.until ? capped.from : capped.until; // an inverted stretch caps no instant
  await db('subscriptions')
    .where({ id: subscriptionId })
    .update({
      usage_capped_until: capped.until,
      usage_capped_stretches: db.raw('usage_capped_stretches + tstzmultirange(tstzrange(?::timestamptz, ?::timestamptz))', [from.toISOString(), capped.until.toISOString()]),
    });
}

/**
 * The cap no longer applies from `at` on (an immediate plan change at `at` to a plan whose cap the period's spend has
 * not reached, or that has none): usage stamped from then on is accepted again; usage stamped before, while the
 * period stood capped, stays refused.
 */
export async function liftUsageCap(db: Db, subscriptionId: string, at: Date): Promise<void> {
  await db('subscriptions')
    .where({ id: subscriptionId })
    .where((capped) => capped.whereNotNull('usage_capped_until').orWhereRaw('usage_capped_stretches && tstzrange(?::timestamptz, NULL)', [at.toISOString()]))
    .update({
      usage_capped_until: null,
      usage_capped_stretches: db.raw('usage_capped_stretches - tstzmultirange(tstzrange(?::timestamptz, NULL))', [at.toISOString()]),
    });
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
