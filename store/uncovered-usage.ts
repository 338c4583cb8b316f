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
 * The customers' billed time as ingestion judges it, in one pass for all of them (a fixed number of queries whatever
 * their count). `pricedStretchesOf` answers only for customers with several subscriptions or a plan change; a lone
 * subscription prices its plan's types over its whole span.
 */
async function coverageOfEach(db: Knex, customerIds: readonly string[]): Promise<Map<string, CustomerCoverage>> {
  const ids = [...new Set(customerIds)];
  const coverage = new Map<string, CustomerCoverage>(ids.map((id) => [id, { firstStart: null, unbilled: [], priced: [] }]));
  if (ids.length === 0) return coverage;
  const subscriptions: { customer_id: string; plan_id: string; start_at: Date; ends_at: Date | null }[] = await db('subscriptions as s')
    .whereIn('s.customer_id', ids)
    .select('s.customer_id', 's.plan_id', 's.start_at', db.raw(`${usageEndSql('s')} AS ends_at`));
  const byCustomer = new Map<string, typeof subscriptions>();
  for (const row of subscriptions) byCustomer.set(row.customer_id, [...(byCustomer.get(row.customer_id) ?? []), row]);
  const subscribed = [...byCustomer.keys()];
  const [acceptance, several] = await Promise.all([usageAcceptance(db, subscribed), pricedStretchesOf(db, subscribed)]);
  const lone = subscribed.filter((id) => !several.has(id)).map((id) => byCustomer.get(id)![0]);
  const typesByPlan = await pricedEventTypesOf(db, lone.map((row) => row.plan_id));
  for (const [customerId, rows] of byCustomer) {
    const firstStart = new Date(Math.min(...rows.map((row) => row.start_at.getTime())));
    const unbilled = acceptance.uncovered.get(customerId) ?? [];
    const [first] = rows;
    const priced = several.get(customerId) ?? pricedStretches({ start: first.start_at, end: first.ends_at, planId: first.plan_id, changes: [] }, () => typesByPlan.get(first.plan_id) ?? new Set<string>());
    coverage.set(customerId, { firstStart, unbilled, priced });
  }
  return coverage;
}

/** Postgres reads 'infinity' as after every instant: an open-ended stretch. */
const untilText = (until: Date | null): string => (until === null ? 'infinity' : until.toISOString());

/**
 * The customers' accepted events no subscription of theirs prices, each with its reason, as one SQL relation
 * (`uncovered`), for one customer (the list) or many in one statement (a batch of imported starts). Accepted and
 * unclaimed, not reversed and not a reversal (a reversal bills nothing of its own). An event the late-usage list
 * holds (`listLateUsage`: inside a closed period of a plan metering its type, outside that subscription's service
 * gaps) is left out whatever the stretches say, so a re-rating's pending events and these never share one.
 */
function judgedEventsSql(coverages: ReadonlyMap<string, CustomerCoverage>): { sql: string; bindings: Knex.RawBinding[] } {
  const customers = [...coverages].map(([customerId, coverage]) => ({ customerId, firstStart: coverage.firstStart?.toISOString() ?? null }));
  const unbilledRows = [...coverages].flatMap(([customerId, coverage]) => coverage.unbilled.map((stretch) => ({ customerId, from: stretch.from.toISOString(), until: untilText(stretch.until) })));
  const pricedRows = [...coverages].flatMap(([customerId, coverage]) =>
    coverage.priced.flatMap((stretch) => [...stretch.eventTypes].map((eventType) => ({ customerId, eventType, from: stretch.from.toISOString(), until: untilText(stretch.until) }))),
  );
  const sql = `WITH judged_customers AS (SELECT * FROM unnest(?::uuid[], ?::timestamptz[]) AS jc(customer_id, first_start)),
       unbilled AS (SELECT * FROM unnest(?::uuid[], ?::timestamptz[], ?::timestamptz[]) AS u(customer_id, from_at, until_at)),
       priced AS (SELECT * FROM unnest(?::uuid[], ?::text[], ?::timestamptz[], ?::timestamptz[]) AS p(customer_id, event_type, from_at, until_at)),
       judged AS (
         SELECT e.id, e.customer_id, e.event_id, e.event_type, e.occurred_at, e.received_at, e.properties,
                CASE WHEN jc.first_start IS NULL THEN 'no_subscription'
                     WHEN e.occurred_at < jc.first_start THEN 'before_first_subscription'
                     WHEN EXISTS (SELECT 1 FROM unbilled u WHERE u.customer_id = e.customer_id AND e.occurred_at >= u.from_at AND e.occurred_at < u.until_at AND u.until_at = 'infinity') THEN 'after_subscription_end'
                     WHEN EXISTS (SELECT 1 FROM unbilled u WHERE u.customer_id = e.customer_id AND e.occurred_at >= u.from_at AND e.occurred_at < u.until_at) THEN 'between_subscriptions'
                     WHEN NOT EXISTS (SELECT 1 FROM priced p WHERE p.customer_id = e.customer_id AND p.event_type = e.event_type AND e.occurred_at >= p.from_at AND e.occurred_at < p.until_at) THEN 'event_type_not_priced'
                END AS reason
           FROM judged_customers jc
           JOIN usage_events e ON e.customer_id = jc.customer_id
          WHERE e.period_close_id IS NULL
            AND e.reversed_by_event_id IS NULL AND e.reverses_event_id IS NULL
       ),
       uncovered AS (
         SELECT j.* FROM judged j
          WHERE j.reason IS NOT NULL
            AND NOT EXISTS (
              SELECT 1 FROM usage_period_closures c JOIN subscriptions s ON s.id = c.subscription_id
               WHERE c.customer_id = j.customer_id AND j.occurred_at >= c.period_start AND j.occurred_at < c.period_end
                 AND NOT (s.service_gaps @> j.occurred_at)
                 AND (c.plan_id IS NULL OR j.event_type IN (SELECT event_type FROM (${planEventTypesSql('c.plan_id')}) metered)))
       )`;
  return {
    sql,
    bindings: [
      customers.map((row) => row.customerId),
      // pg writes a null element as NULL (a customer with no subscription); knex's binding type admits no nulls in arrays.
      customers.map((row) => row.firstStart) as unknown as string[],
      unbilledRows.map((row) => row.customerId),
      unbilledRows.map((row) => row.from),
      unbilledRows.map((row) => row.until),
      pricedRows.map((row) => row.customerId),
      pricedRows.map((row) => row.eventType),
      pricedRows.map((row) => row.from),
      pricedRows.map((row) => row.until),
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
  const judged = judgedEventsSql(await coverageOfEach(db, [customerId]));
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

/** A subscription's start to judge: its customer, the plan it starts on, and its start (the row's `start_at`). */
export interface SubscriptionStart {
  readonly customerId: string;
  readonly planId: string;
  readonly startAt: Date;
}

/** A start with the event types its plan meters, by its position in what the caller asked. */
interface TypedStart extends SubscriptionStart {
  readonly position: number;
  readonly eventTypes: readonly string[];
}

/**
 * The positions of the starts whose customer has any unclaimed event of the plan's types stamped before the start:
 * one statement for all of them, one probe of the unclaimed-events index per (start, type). The usual start has
 * none, and then pays only this read instead of the whole judgement.
 */
async function startsWithUnclaimedBefore(db: Knex, starts: readonly TypedStart[]): Promise<Set<number>> {
  const pairs = starts.flatMap((start) => start.eventTypes.map((eventType) => ({ ...start, eventType })));
  if (pairs.length === 0) return new Set();
  const result = await db.raw<{ rows: { position: number }[] }>(
    `SELECT DISTINCT q.position
       FROM unnest(?::int[], ?::uuid[], ?::text[], ?::timestamptz[]) AS q(position, customer_id, event_type, before_at)
      WHERE EXISTS (SELECT 1 FROM usage_events e
                     WHERE e.customer_id = q.customer_id AND e.event_type = q.event_type AND e.occurred_at < q.before_at
                       AND e.period_close_id IS NULL)`,
    [pairs.map((pair) => pair.position), pairs.map((pair) => pair.customerId), pairs.map((pair) => pair.eventType), pairs.map((pair) => pair.startAt.toISOString())],
  );
  return new Set(result.rows.map((row) => row.position));
}

/** Of these starts, the uncovered events of each start's types stamped before it, by position: one statement. */
async function uncoveredBeforeStarts(db: Knex, starts: readonly TypedStart[]): Promise<Map<number, UncoveredBefore>> {
  if (starts.length === 0) return new Map();
  const judged = judgedEventsSql(await coverageOfEach(db, starts.map((start) => start.customerId)));
  const pairs = starts.flatMap((start) => start.eventTypes.map((eventType) => ({ ...start, eventType, before: start.startAt.toISOString() })));
  const result = await db.raw<{ rows: { position: number; events: string; earliest: Date }[] }>(
    `${judged.sql}
     SELECT q.position, count(*) AS events, min(u.occurred_at) AS earliest
       FROM unnest(?::int[], ?::uuid[], ?::text[], ?::timestamptz[]) AS q(position, customer_id, event_type, before_at)
       JOIN uncovered u ON u.customer_id = q.customer_id AND u.event_type = q.event_type AND u.occurred_at < q.before_at
      GROUP BY q.position`,
    [...judged.bindings, pairs.map((pair) => pair.position), pairs.map((pair) => pair.customerId), pairs.map((pair) => pair.eventType), pairs.map((pair) => pair.before)],
  );
  return new Map(result.rows.map((row) => [row.position, { events: Number(row.events), earliest: row.earliest }]));
}

/**
 * For each start, the customer's uncovered events of the types its plan meters, stamped before it: read after the
 * subscriptions were stored, they are what each start leaves unbilled (back-dating would cover them). In the order
 * asked. Set-based, so a batch (the bulk import) costs what one start does in statements: the plans' types and the
 * unclaimed-events probe are one statement each, and only the starts the probe finds pay the whole judgement (the
 * customers' coverage in a few statements, then one statement for all of them).
 */
export async function uncoveredUsageBeforeEach(db: Knex, starts: readonly SubscriptionStart[]): Promise<UncoveredBefore[]> {
  const typesByPlan = await pricedEventTypesOf(db, starts.map((start) => start.planId));
  const typed = starts.map((start, position): TypedStart => ({ ...start, position, eventTypes: [...(typesByPlan.get(start.planId) ?? [])] }));
  const probed = await startsWithUnclaimedBefore(db, typed);
  const found = await uncoveredBeforeStarts(db, typed.filter((start) => probed.has(start.position)));
  return typed.map((start) => found.get(start.position) ?? { events: 0, earliest: null });
}

/** `uncoveredUsageBeforeEach` for one start (POST /v1/subscriptions). */
export async function uncoveredUsageBefore(db: Knex, customerId: string, planId: string, before: Date): Promise<UncoveredBefore> {
  const [uncovered] = await uncoveredUsageBeforeEach(db, [{ customerId, planId, startAt: before }]);
  return uncovered;
}
