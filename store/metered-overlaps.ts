/**
 * One customer's usage of an event type is billed by at most one subscription at any instant. Usage events name a
 * customer, not a subscription, and a period close claims every unclaimed event of its plan's event types in its
 * window (store/usage.ts `closeUsage`), a seat level is carried by customer and metric (store/seat-usage.ts): with two
 * subscriptions pricing one event type over one stretch, which one bills the usage was a race between their closes
 * (seats billed by neither, or twice). So a subscription, a plan change or a win-back restart that would make two of
 * a customer's subscriptions price one event type at once is refused before anything is written (docs/api.md).
 *
 * Serialized per customer by a lock on the customer's row (`lockCustomersForMeteredCheck`), taken in the transaction
 * that checks and then writes: two creations racing for one customer check one after the other, and the second sees
 * the first's row. Not an exclusion constraint: the stretch a subscription prices ends where its usage ends, which is
 * derived (store/usage.ts `usageEndSql`: a pending cancellation's period end, a canceled one's last closed period)
 * and its event types follow its plan's charges through plan changes; a constraint would need a table of
 * (subscription, event type, range) rows kept in step with every status, plan and end the workflow writes.
 *
 * A plan change scheduled for the period's end counts from its instant on (`scheduled_change_plan_id`,
 * `scheduled_change_at`, migration 0720): before, it lived only in the workflow until the boundary, and a subscription
 * created meanwhile pricing the scheduled plan's event types was accepted (from the boundary on both billed them).
 */
import type { Knex } from 'knex';
import { planEventTypesSql, usageEndSql } from './usage';

/** Another subscription of the customer pricing some of the same event types over an overlapping stretch. */
export interface MeteredOverlap {
  readonly subscriptionId: string;
  readonly eventTypes: readonly string[];
}

/**
 * Takes the customers' row locks until the transaction ends. FOR NO KEY UPDATE: it serializes the checks of one
 * customer but not ingestion, whose inserts only take FOR KEY SHARE on the customer they reference.
 */
export async function lockCustomersForMeteredCheck(trx: Knex.Transaction, customerIds: readonly string[]): Promise<void> {
  if (customerIds.length === 0) return;
  // In one order: two imports of overlapping customers lock them one after the other, never crosswise.
  await trx.raw('SELECT id FROM customers WHERE id = ANY(?::uuid[]) ORDER BY id FOR NO KEY UPDATE', [[...new Set(customerIds)]]);
}

/** The columns of a subscription with no scheduled change: spread into an update. */
export const NO_SCHEDULED_CHANGE = { scheduled_change_plan_id: null, scheduled_change_at: null } as const;

/**
 * The workflow accepted (or may have accepted: its answer was lost) a change to `planId` at `at`, replacing any
 * earlier one. Written in the transaction that holds the customer's lock from the check, so a subscription created
 * for the customer afterwards is checked against it. Claiming a change the workflow did not take only refuses more
 * until the row shows a period starting after its instant (`scheduledChangeLapsed`); missing one it took would let two
 * subscriptions bill a type.
 *
 * Written after the workflow answered, so the row may have moved on meanwhile by writers that take no customer lock
 * (`scheduledChangeCanStand`): then the change can no longer be taken, and a record would outlive the clearing.
 */
export async function recordScheduledChange(trx: Knex.Transaction, subscriptionId: string, planId: string, at: Date): Promise<void> {
  await trx('subscriptions')
    .where({ id: subscriptionId })
    .where((row) => scheduledChangeCanStand(row, planId, at))
    .update({ scheduled_change_plan_id: planId, scheduled_change_at: at, updated_at: trx.fn.now() });
}

/**
 * Whether the row can still take a change to `planId` at `at`. Not when canceled (a cancellation now takes no customer
 * lock and its status write clears the change; `canceled_at` stays while needs_attention overlays the end: a canceled
 * run never applies it, a win-back restart starts without it), nor when the row already prices by that plan (the
 * boundary's switch applied it and cleared the record) or shows a period starting after `at` (a record there would
 * have lapsed: `scheduledChangeLapsed`, the same rule). A row showing the period `at` opens without the switch is still
 * written: a lost answer the workflow took in that period's grace window is held for the next boundary, and skipping
 * it left that change uncounted. Before, a record written after those clearings stood: after a win-back it refused
 * subscriptions pricing a plan never moved to.
 */
function scheduledChangeCanStand(row: Knex.QueryBuilder, planId: string, at: Date): Knex.QueryBuilder {
  return row
    .whereNot({ status: 'canceled' })
    .whereNull('canceled_at')
    .whereNot({ plan_id: planId })
    .where((period) => period.whereNull('current_period_start').orWhere('current_period_start', '<=', at));
}

/**
 * SQL: the subscription row `alias` shows a period starting strictly after its scheduled change's instant, so its
 * workflow no longer holds that change. A period starting at the instant is not enough: a `period_end` request whose
 * answer was lost is recorded at the period end the row showed, and the row shows a new period only with its opening
 * invoice, after the usage grace window. A request the workflow took past that boundary (asked in the grace window, or
 * delayed on its way) is scheduled for the next one. Before, its record stopped counting once the row showed the period
 * its instant opens, and a subscription pricing the scheduled plan's event types was accepted while the workflow would
 * switch to that plan at the next boundary (from there both priced them). The row lags the workflow by at most that
 * window, so one period more covers it. A change taken at its instant has switched the row's plan before the row shows
 * that period (workflows/subscription/period.ts): the longer life costs only a record the workflow never took (or whose
 * withdrawal's answer was lost), which now refuses one period longer.
 */
function scheduledChangeLapsed(alias: string): string {
  return `coalesce(${alias}.current_period_start > ${alias}.scheduled_change_at, false)`;
}

/** The workflow withdrew the scheduled change: from here on the subscription prices by its plan in force only. */
export async function forgetScheduledChange(trx: Knex.Transaction, subscriptionId: string): Promise<void> {
  await trx('subscriptions').where({ id: subscriptionId }).whereNotNull('scheduled_change_plan_id').update({ ...NO_SCHEDULED_CHANGE, updated_at: trx.fn.now() });
}

export interface MeteredCandidate {
  readonly customerId: string;
  /** The plan the new stretch would price by. */
  readonly planId: string;
  /** Where the new stretch starts; it runs on with no end (a subscription's end is decided later). */
  readonly from: Date;
  /** The subscription that asks (a plan change, a restart, an import's own id): its own stretches are no overlap. */
  readonly subscriptionId?: string;
}

/**
 * The customer's other subscriptions that price one of the plan's event types somewhere from `from` on: every one
 * whose usage has not ended by then (live, trialing, paused, past due, suspended, scheduled to start whenever,
 * pending cancellation until its end, canceled until its usage end), by its plan in force now, by every plan it
 * had before a change made after `from`, and by its scheduled plan from the change's instant up to its usage end.
 */
export async function meteredOverlapsOf(db: Knex | Knex.Transaction, candidate: MeteredCandidate): Promise<MeteredOverlap[]> {
  return (await meteredOverlapsOfEach(db, [candidate]))[0];
}

/** `meteredOverlapsOf` for each candidate, in their order, in one query (an import's batch). */
export async function meteredOverlapsOfEach(db: Knex | Knex.Transaction, candidates: readonly MeteredCandidate[]): Promise<MeteredOverlap[][]> {
  const overlaps: MeteredOverlap[][] = candidates.map(() => []);
  if (candidates.length === 0) return overlaps;
  const rows = candidates.map((candidate, index) => ({
    position: index,
    customer_id: candidate.customerId,
    plan_id: candidate.planId,
    from_at: candidate.from.toISOString(),
    subscription_id: candidate.subscriptionId ?? null,
  }));
  const result = await db.raw<{ rows: { position: number; subscription_id: string; event_types: string[] }[] }>(
    `WITH candidates AS (
            SELECT * FROM json_to_recordset(?::json) AS c(position int, customer_id uuid, plan_id uuid, from_at timestamptz, subscription_id uuid)
          ),
          others AS (
            SELECT c.position, s.id, s.plan_id, s.scheduled_change_plan_id, s.scheduled_change_at, s.current_period_start,
                   ${usageEndSql('s')} AS usage_end
              FROM candidates c
              JOIN subscriptions s ON s.customer_id = c.customer_id AND s.id IS DISTINCT FROM c.subscription_id
             WHERE coalesce(${usageEndSql('s')} > c.from_at, true)
          ),
          plans_in_force AS (
            SELECT o.position, o.id, o.plan_id FROM others o
            UNION
            -- The scheduled plan prices from its instant up to the usage end (a cancellation at that period's end: never).
            -- It stops counting once the row shows a period starting after its instant (scheduledChangeLapsed).
            SELECT o.position, o.id, o.scheduled_change_plan_id
              FROM others o
             WHERE o.scheduled_change_plan_id IS NOT NULL
               AND coalesce(o.usage_end > o.scheduled_change_at, true)
               AND NOT ${scheduledChangeLapsed('o')}
            UNION
            SELECT o.position, o.id, pc.old_plan_id
              FROM others o
              JOIN candidates c ON c.position = o.position
              JOIN plan_changes pc ON pc.subscription_id = o.id AND pc.change_at > c.from_at
          ),
          plan_ids AS (SELECT plan_id FROM plans_in_force UNION SELECT plan_id FROM candidates),
          priced AS (${planEventTypesSql('SELECT plan_id FROM plan_ids')})
     SELECT f.position, f.id AS subscription_id, array_agg(DISTINCT theirs.event_type ORDER BY theirs.event_type) AS event_types
       FROM plans_in_force f
       JOIN candidates c ON c.position = f.position
       JOIN priced theirs ON theirs.plan_id = f.plan_id
       JOIN priced ours ON ours.plan_id = c.plan_id AND ours.event_type = theirs.event_type
      GROUP BY f.position, f.id
      ORDER BY f.position, f.id`,
    [JSON.stringify(rows)],
  );
  for (const row of result.rows) overlaps[row.position].push({ subscriptionId: row.subscription_id, eventTypes: row.event_types });
  return overlaps;
}

/** The refusal's words: which subscription already prices which event types. */
export function describeMeteredOverlap(overlap: MeteredOverlap): string {
  return `subscription ${overlap.subscriptionId} of this customer already prices ${overlap.eventTypes.join(', ')} over an overlapping stretch: one customer's usage of an event type is billed by at most one subscription at a time`;
}
