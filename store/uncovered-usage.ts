import type { Knex } from 'knex';
import { pricedStretches, type PricedStretch, type UncoveredStretch } from '../domain/usage-events';
import { planEventTypesSql, pricedEventTypesOf, pricedStretchesOf, usageAcceptance, usageEndSql } from './usage';

/**
 * Why no subscription of the customer prices an accepted, unclaimed event (docs/usage-events.md, "Uncovered usage"):
 * the customer has no subscription; the event is stamped before the first one starts; between one's end and the next
 * start or a win-back restart (a service gap); after every subscription's usage end; or inside a subscription's time
 * under a plan that does not meter its type.
 */
export type UncoveredReason = 'no_subscription' | 'before_first_subscription' | 'between_subscriptions' | 'after_subscription_end' | 'event_type_not_priced';

export interface UncoveredUsageEvent {
  readonly id: string;
  readonly event_id: string;
  readonly event_type: string;
  readonly occurred_at: Date;
  readonly received_at: Date;
  readonly properties: Record<string, unknown>;
  readonly reason: UncoveredReason;
}

export interface UncoveredUsageTotal {
  readonly event_type: string;
  readonly events: number;
  readonly earliest: Date;
  readonly latest: Date;
}

/** What judges a customer's events: when their subscriptions bill at all, and which types each stretch prices. */
interface CustomerCoverage {
  /** Null: the customer has no subscription. */
  readonly firstStart: Date | null;
  /** The stretches after the first start no subscription bills (ingestion's own judgement: `usageAcceptance`). */
  readonly unbilled: readonly UncoveredStretch[];
  readonly priced: readonly PricedStretch[];
}

/**
 * The customer's billed time as ingestion judges it. `pricedStretchesOf` answers only for customers with several
 * subscriptions or a plan change; a lone subscription prices its plan's types over its whole span.
 */
async function coverageOf(db: Knex, customerId: string): Promise<CustomerCoverage> {
  const subscriptions: { plan_id: string; start_at: Date; ends_at: Date | null }[] = await db('subscriptions as s')
    .where('s.customer_id', customerId)
    .select('s.plan_id', 's.start_at', db.raw(`${usageEndSql('s')} AS ends_at`));
  if (subscriptions.length === 0) return { firstStart: null, unbilled: [], priced: [] };
  const firstStart = new Date(Math.min(...subscriptions.map((row) => row.start_at.getTime())));
  const [acceptance, several] = await Promise.all([usageAcceptance(db, [customerId]), pricedStretchesOf(db, [customerId])]);
  const unbilled = acceptance.uncovered.get(customerId) ?? [];
  const known = several.get(customerId);
  if (known) return { firstStart, unbilled, priced: known };
  const [lone] = subscriptions;
  const types = (await pricedEventTypesOf(db, [lone.plan_id])).get(lone.plan_id) ?? new Set<string>();
  return { firstStart, unbilled, priced: pricedStretches({ start: lone.start_at, end: lone.ends_at, planId: lone.plan_id, changes: [] }, () => types) };
}

/** Postgres reads 'infinity' as after every instant: an open-ended stretch. */
const untilText = (until: Date | null): string => (until === null ? 'infinity' : until.toISOString());

/**
 * The customer's accepted events no subscription prices, each with its reason, as one SQL relation (`judged`).
 * Accepted and unclaimed, not reversed and not a reversal (a reversal bills nothing of its own). An event the late-usage
 * list holds (`listLateUsage`: inside a closed period of a plan metering its type, outside that subscription's service
 * gaps) is left out whatever the stretches say, so a re-rating's pending events and these never share one.
 */
function judgedEventsSql(customerId: string, coverage: CustomerCoverage): { sql: string; bindings: Knex.RawBinding[] } {
  const pricedRows = coverage.priced.flatMap((stretch) => [...stretch.eventTypes].map((eventType) => ({ eventType, from: stretch.from.toISOString(), until: untilText(stretch.until) })));
  const sql = `WITH unbilled AS (SELECT * FROM unnest(?::timestamptz[], ?::timestamptz[]) AS u(from_at, until_at)),
       priced AS (SELECT * FROM unnest(?::text[], ?::timestamptz[], ?::timestamptz[]) AS p(event_type, from_at, until_at)),
       judged AS (
         SELECT e.id, e.event_id, e.event_type, e.occurred_at, e.received_at, e.properties,
                CASE WHEN ?::timestamptz IS NULL THEN 'no_subscription'
                     WHEN e.occurred_at < ?::timestamptz THEN 'before_first_subscription'
                     WHEN EXISTS (SELECT 1 FROM unbilled u WHERE e.occurred_at >= u.from_at AND e.occurred_at < u.until_at AND u.until_at = 'infinity') THEN 'after_subscription_end'
                     WHEN EXISTS (SELECT 1 FROM unbilled u WHERE e.occurred_at >= u.from_at AND e.occurred_at < u.until_at) THEN 'between_subscriptions'
                     WHEN NOT EXISTS (SELECT 1 FROM priced p WHERE p.event_type = e.event_type AND e.occurred_at >= p.from_at AND e.occurred_at < p.until_at) THEN 'event_type_not_priced'
                END AS reason
           FROM usage_events e
          WHERE e.customer_id = ? AND e.period_close_id IS NULL
            AND e.reversed_by_event_id IS NULL AND e.reverses_event_id IS NULL
       ),
       uncovered AS (
         SELECT j.* FROM judged j
          WHERE j.reason IS NOT NULL
            AND NOT EXISTS (
              SELECT 1 FROM usage_period_closures c JOIN subscriptions s ON s.id = c.subscription_id
               WHERE c.customer_id = ? AND j.occurred_at >= c.period_start AND j.occurred_at < c.period_end
                 AND NOT (s.service_gaps @> j.occurred_at)
                 AND (c.plan_id IS NULL OR j.event_type IN (SELECT event_type FROM (${planEventTypesSql('c.plan_id')}) metered)))
       )`;
  const firstStart = coverage.firstStart?.toISOString() ?? null;
  return {
    sql,
    bindings: [
      coverage.unbilled.map((stretch) => stretch.from.toISOString()),
      coverage.unbilled.map((stretch) => untilText(stretch.until)),
      pricedRows.map((row) => row.eventType),
      pricedRows.map((row) => row.from),
      pricedRows.map((row) => row.until),
      firstStart,
      firstStart,
      customerId,
      customerId,
    ],
  };
}

export interface UncoveredUsagePage {
  readonly rows: UncoveredUsageEvent[];
  readonly hasMore: boolean;
  /** Every uncovered event of the customer (not only this page's), per event type. */
  readonly totals: UncoveredUsageTotal[];
  /** `startingAfter` names no event of this customer: the caller refuses the cursor. */
  readonly foreignCursor: boolean;
}

/**
 * One page of the customer's uncovered events, oldest first (occurred_at, then id), after the event `startingAfter`
 * (its stored id) when given, with the totals per event type over all of them.
 */
export async function listUncoveredUsage(db: Knex, customerId: string, limit: number, startingAfter?: string): Promise<UncoveredUsagePage> {
  if (startingAfter !== undefined && !(await db('usage_events').where({ id: startingAfter, customer_id: customerId }).first('id'))) {
    return { rows: [], hasMore: false, totals: [], foreignCursor: true };
  }
  const judged = judgedEventsSql(customerId, await coverageOf(db, customerId));
  const after = startingAfter === undefined ? '' : 'WHERE (occurred_at, id) > (SELECT occurred_at, id FROM usage_events WHERE id = ?)';
  const [page, totals] = await Promise.all([
    db.raw<{ rows: UncoveredUsageEvent[] }>(
      `${judged.sql} SELECT id::text AS id, event_id, event_type, occurred_at, received_at, properties, reason FROM uncovered ${after} ORDER BY occurred_at, id LIMIT ?`,
      [...judged.bindings, ...(startingAfter === undefined ? [] : [startingAfter]), limit + 1],
    ),
    db.raw<{ rows: (Omit<UncoveredUsageTotal, 'events'> & { events: string })[] }>(
      `${judged.sql} SELECT event_type, count(*) AS events, min(occurred_at) AS earliest, max(occurred_at) AS latest FROM uncovered GROUP BY event_type ORDER BY event_type`,
      judged.bindings,
    ),
  ]);
  return {
    rows: page.rows.slice(0, limit),
    hasMore: page.rows.length > limit,
    totals: totals.rows.map((row) => ({ ...row, events: Number(row.events) })),
    foreignCursor: false,
  };
}

/** Uncovered events of some types stamped before an instant: what a new subscription's start leaves unbilled. */
export interface UncoveredBefore {
  readonly events: number;
  /** Null when there are none. */
  readonly earliest: Date | null;
}

/**
 * Whether the customer has any unclaimed event of these types stamped before `before` (the unclaimed-events index):
 * the usual new subscription has none, and its start then pays this one read instead of the whole judgement.
 */
async function hasUnclaimedBefore(db: Knex, customerId: string, eventTypes: readonly string[], before: Date): Promise<boolean> {
  const found = await db('usage_events')
    .where({ customer_id: customerId })
    .whereNull('period_close_id')
    .whereIn('event_type', [...eventTypes])
    .andWhere('occurred_at', '<', before)
    .first(db.raw('1 AS found'));
  return found !== undefined;
}

/**
 * The customer's uncovered events of the types `planId` meters, stamped before `before`: read after a subscription on
 * that plan starting at `before` was stored, they are what its start leaves unbilled (back-dating would cover them).
 */
export async function uncoveredUsageBefore(db: Knex, customerId: string, planId: string, before: Date): Promise<UncoveredBefore> {
  const eventTypes = [...((await pricedEventTypesOf(db, [planId])).get(planId) ?? [])];
  if (eventTypes.length === 0 || !(await hasUnclaimedBefore(db, customerId, eventTypes, before))) return { events: 0, earliest: null };
  const judged = judgedEventsSql(customerId, await coverageOf(db, customerId));
  const result = await db.raw<{ rows: { events: string; earliest: Date | null }[] }>(
    `${judged.sql} SELECT count(*) AS events, min(occurred_at) AS earliest FROM uncovered WHERE event_type = ANY(?::text[]) AND occurred_at < ?`,
    [...judged.bindings, eventTypes, before.toISOString()],
  );
  const [row] = result.rows;
  return { events: Number(row.events), earliest: row.earliest };
}
