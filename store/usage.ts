import type { Knex } from 'knex';
import { BilledSpan, MAX_CLOCK_SKEW_MS, pricedStretches, spansAroundGaps, uncoveredStretches, type PricedStretch, type ServiceGap, type UncoveredStretch } from '../domain/usage-events';
import { usageCharges } from '../domain/plan-terms';
import type { Charge } from '../domain/rating';
import type { UsageGroup } from '../domain/dimensions';
import { Aggregation, findMetricsByCode, MetricRow } from './catalog';
import { forgetRollupsOverlapping, insertEventsFoldingRollups, lockRollupsShared } from './rollups';
import { aggregateMetricGroups } from './dimension-usage';
import type { CarriedLevel } from '../domain/seat-metrics';
import { aggregateProratedMetric, isProratedAggregation } from './seat-usage';
import { mapOnConnection } from './transactions';
import { costedUsage, costTablesOf, type CostedUsage } from './cost-tables';
import type { CostSegment, CostTable } from '../domain/cost-tables';
import { dimensionKey } from '../domain/dimensions';

export interface NewUsageEvent {
  readonly customerId: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly occurredAt: Date;
  readonly properties: Record<string, unknown>;
}

export interface InsertedUsageEvent {
  readonly customer_id: string;
  readonly event_id: string;
}

/**
 * Inserts a batch in one statement. The unique (customer, event id) is the duplicate barrier: a resent event,
 * even one racing its first send in another request, is skipped. An event whose time falls before the end of
 * its customer's latest closed usage period is marked late as it is stored. The same statement folds the stored
 * events into the running totals of their windows (store/rollups.ts), in one transaction with the customers'
 * shared rollup locks. Returns the rows inserted.
 */
export async function insertUsageEvents(db: Knex, events: readonly NewUsageEvent[]): Promise<InsertedUsageEvent[]> {
  if (events.length === 0) return [];
  const rows = {
    customerIds: events.map((event) => event.customerId),
    eventIds: events.map((event) => event.eventId),
    eventTypes: events.map((event) => event.eventType),
    occurredAts: events.map((event) => event.occurredAt.toISOString()),
    properties: events.map((event) => JSON.stringify(event.properties)),
  };
  return db.transaction(async (trx) => {
    await lockRollupsShared(trx, rows.customerIds);
    return insertEventsFoldingRollups(trx, rows);
  });
}

/** An event the batch meant to store, as compared with what its (customer, event id) holds. */
export interface ResentUsageEvent extends NewUsageEvent {
  /** The event a reversal takes back; undefined for a usage event. */
  readonly reversesEventId?: string;
}

/** What (customer, event id) holds against one resent event: nothing, the same event, or another one. */
export type StoredUsageEventMatch =
  | { readonly kind: 'missing' }
  | { readonly kind: 'same' }
  | { readonly kind: 'different'; readonly storedId: string; readonly differs: readonly ('event_type' | 'timestamp' | 'properties' | 'reverses')[] };

/**
 * Compares events that were not stored as sent (their id was taken, by an earlier request or earlier in the
 * batch) with the stored row of their (customer, event id). One event id names one event: a resend with another
 * type, instant or properties is not "already done" but a different event (docs/usage-events.md, "Resends").
 * Compared in Postgres, as stored: the instant to the stored precision (a millisecond: ingestion parses to a JS
 * Date), properties by jsonb equality (key order ignored, numbers by value so 1 = 1.0, a string never equals a
 * number). Read after the insert committed, so a racing request's row is seen. One query, only for resends.
 */
export async function compareWithStoredEvents(db: Knex, events: readonly ResentUsageEvent[]): Promise<StoredUsageEventMatch[]> {
  if (events.length === 0) return [];
  const result = await db.raw<{ rows: { position: number; stored_id: string | null; same_type: boolean; same_time: boolean; same_properties: boolean; same_reverses: boolean }[] }>(
    `SELECT c.position, u.id::text AS stored_id,
            u.event_type = c.event_type AS same_type,
            u.occurred_at = c.occurred_at AS same_time,
            u.properties = c.properties AS same_properties,
            coalesce(u.reverses_event_id, '') = c.reverses_event_id AS same_reverses -- '': a usage event (reverses is never empty)
     FROM unnest(?::int[], ?::uuid[], ?::text[], ?::text[], ?::timestamptz[], ?::jsonb[], ?::text[])
          AS c(position, customer_id, event_id, event_type, occurred_at, properties, reverses_event_id)
     LEFT JOIN usage_events u ON u.customer_id = c.customer_id AND u.event_id = c.event_id`,
    [
      events.map((_, position) => position),
      events.map((event) => event.customerId),
      events.map((event) => event.eventId),
      events.map((event) => event.eventType),
      events.map((event) => event.occurredAt.toISOString()),
      events.map((event) => JSON.stringify(event.properties)),
      events.map((event) => event.reversesEventId ?? ''),
    ],
  );
  const matches: StoredUsageEventMatch[] = events.map(() => ({ kind: 'missing' }));
  for (const row of result.rows) {
    if (row.stored_id === null) continue;
    const differs = [
      ...(row.same_type ? [] : (['event_type'] as const)),
      ...(row.same_time ? [] : (['timestamp'] as const)),
      ...(row.same_properties ? [] : (['properties'] as const)),
      ...(row.same_reverses ? [] : (['reverses'] as const)),
    ];
    matches[row.position] = differs.length === 0 ? { kind: 'same' } : { kind: 'different', storedId: row.stored_id, differs };
  }
  return matches;
}

export interface MetricUsage {
  /** Aggregated quantity as a decimal string. */
  readonly quantity: string;
  readonly eventCount: number;
  /** Per-event values, for percentage (outcome) charges. */
  readonly eventValues?: string[];
  /** Per combination of the metric's group_by properties (dimensional pricing); absent for other metrics. */
  readonly groups?: UsageGroup[];
  /** Seat-like metrics (store/seat-usage.ts): the level at the period start, carried from earlier periods. */
  readonly openingLevel?: string;
  /** Seat-like metrics: the level the period ends at, kept by the close as the next period's opening level. */
  readonly closingLevel?: CarriedLevel;
  /** The quantity split by the cost table in effect at each event (metrics with cost tables; store/cost-tables.ts). */
  readonly costs?: CostSegment[];
  /** The currency of the tables `costs` was costed with: the plan's, so a closure says what its costs are in. */
  readonly costCurrency?: string;
}

export type UsageTotals = Record<string, MetricUsage>;

/** Which events an aggregation reads: a closed period's claimed events, or the still-open (unclaimed) ones. */
export type UsageScope =
  /** `before`: only the events that happened before it (what a grant expiring mid-period may pay, docs/wallets.md). */
  | { readonly kind: 'claimed'; readonly closeId: string; readonly before?: Date }
  /** A closed period's events plus the late ones that fall in it (re-rating with late usage). */
  | { readonly kind: 'claimed_and_late'; readonly closeId: string; readonly customerId: string; readonly from: Date; readonly to: Date }
  | { readonly kind: 'unclaimed'; readonly customerId: string; readonly from: Date; readonly to: Date };

/**
 * A property value that reads as a number within the per-event bounds of domain/usage-events.ts (at most 12
 * integer and 12 fraction digits), negative only for a metric that allows it. Ingestion refuses anything else;
 * these patterns make events stored before those checks harmless to the preview and the invoice: a value outside
 * them counts as absent, never as 0, and never reaches a NUMERIC(30, 12) column.
 */
export const NUMERIC_TEXT = String.raw`^0*[0-9]{1,12}(\.[0-9]{1,12})?$`;
const SIGNED_NUMERIC_TEXT = String.raw`^-?0*[0-9]{1,12}(\.[0-9]{1,12})?$`;

/** The pattern a metric's property value must match to be read as a number. */
export function numericTextFor(metric: Pick<MetricRow, 'allow_negative'>): string {
  return metric.allow_negative ? SIGNED_NUMERIC_TEXT : NUMERIC_TEXT;
}

/**
 * The SQL of a metric's aggregation. A property value that is not a number counts as absent, never as 0.
 * A count metric with a property counts the events with a readable value (ingestion requires one on each), so a
 * percentage charge gets exactly one value per counted event. A corrections sum that nets negative bills 0.
 */
export function aggregationSql(aggregation: Aggregation, property: string | null = null): string {
  switch (aggregation) {
    case 'count':
      return property === null ? 'count(*)' : 'count(value)';
    case 'sum':
      return 'greatest(coalesce(sum(value), 0), 0)';
    case 'max':
      return 'coalesce(max(value), 0)';
    case 'unique_count':
      return 'count(DISTINCT raw_value) FILTER (WHERE raw_value IS NOT NULL)';
    case 'latest':
      return 'coalesce((array_agg(value ORDER BY occurred_at DESC, id DESC) FILTER (WHERE value IS NOT NULL))[1], 0)';
    // A seat-like metric bills a prorated quantity (store/seat-usage.ts); this plain aggregate only serves the daily
    // chart, as its totals twin in store/rollups.ts: the net seats added (not below 0), or the highest level set.
    case 'prorated_sum':
      return 'greatest(coalesce(sum(value), 0), 0)';
    case 'prorated_latest':
      return 'coalesce(max(value), 0)';
  }
}

/** Aggregates one metric over a scope of events. */
export async function aggregateMetric(
  db: Knex | Knex.Transaction,
  metric: MetricRow,
  scope: UsageScope,
  withEventValues: boolean,
): Promise<MetricUsage> {
  const property = metric.property ?? '';
  const unclaimedSql = 'period_close_id IS NULL AND customer_id = ? AND occurred_at >= ? AND occurred_at < ?';
  const scopeSql =
    scope.kind === 'claimed' ? `period_close_id = ?${scope.before ? ' AND occurred_at < ?' : ''}` : scope.kind === 'unclaimed' ? unclaimedSql : `(period_close_id = ? OR (${unclaimedSql}))`;
  const scopeBindings =
    scope.kind === 'claimed'
      ? [scope.closeId, ...(scope.before ? [scope.before] : [])]
      : scope.kind === 'unclaimed'
        ? [scope.customerId, scope.from, scope.to]
        : [scope.closeId, scope.customerId, scope.from, scope.to];
  if (isProratedAggregation(metric.aggregation)) {
    return aggregateProratedMetric(db, metric, scope, { sql: scopeSql, bindings: scopeBindings }, numericTextFor(metric));
  }
  const result = await db.raw<{ rows: { quantity: string; event_count: string; event_values: string[] | null }[] }>(
    `WITH scoped AS (
       SELECT id, occurred_at, properties ->> ? AS raw_value,
              CASE WHEN properties ->> ? ~ ? THEN (properties ->> ?)::numeric END AS value
       FROM usage_events
       WHERE ${scopeSql} AND event_type = ? AND properties @> ?::jsonb
         AND reverses_event_id IS NULL AND reversed_by_event_id IS NULL -- reversed outcomes count for nothing
     )
     SELECT (${aggregationSql(metric.aggregation, metric.property)})::text AS quantity,
            count(*) AS event_count,
            ${withEventValues ? `array_agg(value::text ORDER BY id) FILTER (WHERE value IS NOT NULL)` : 'NULL'} AS event_values
     FROM scoped`,
    [property, property, numericTextFor(metric), property, ...scopeBindings, metric.event_type, JSON.stringify(metric.filters ?? {})],
  );
  const row = result.rows[0];
  return {
    quantity: row.quantity,
    eventCount: Number(row.event_count),
    ...(withEventValues ? { eventValues: row.event_values ?? [] } : {}),
  };
}

/** The metrics a plan's usage charges price, and whether a percentage charge needs each one's event values. */
export interface MeteredMetrics {
  readonly metrics: readonly { readonly metric: MetricRow; readonly withEventValues: boolean }[];
  /** The event types those metrics read: what a usage close claims. */
  readonly eventTypes: readonly string[];
}

/** One metric's aggregated usage, named by its code: what rating takes. */
export type ChargeUsage = MetricUsage & { readonly metricCode: string };

/** Looks up the metrics of a plan's usage charges (flat charges meter nothing). */
export async function meteredMetricsOf(db: Knex | Knex.Transaction, charges: readonly Charge[]): Promise<MeteredMetrics> {
  const metered = usageCharges(charges);
  const metrics = await findMetricsByCode(db, [...new Set(metered.map((charge) => charge.metricCode))]);
  return {
    metrics: metrics.map((metric) => ({
      metric,
      withEventValues: metered.some((charge) => charge.metricCode === metric.code && charge.price.model === 'percentage'),
    })),
    eventTypes: [...new Set(metrics.map((metric) => metric.event_type))],
  };
}

/**
 * Rows (plan_id, event_type): the event types the usage charges of the plans `planIds` selects (a subquery, a list or
 * a correlated column) meter. meteredMetricsOf's rule in SQL (usageCharges: every charge but a flat one), for the
 * queries that must list or refuse exactly what a usage close claims. Its aliases start with `metered_`, so they
 * never shadow a caller's (a correlated `c.plan_id`).
 */
export const planEventTypesSql = (planIds: string): string => `SELECT DISTINCT metered_plan.id AS plan_id, metered_metric.event_type
       FROM plans metered_plan
       JOIN LATERAL jsonb_array_elements(metered_plan.charges) metered_charge ON metered_charge -> 'price' ->> 'model' IS DISTINCT FROM 'flat'
       JOIN billable_metrics metered_metric ON metered_metric.code = metered_charge ->> 'metricCode'
      WHERE metered_plan.id IN (${planIds})`;

/** The event types each plan meters (`planEventTypesSql`); a plan that meters none maps to an empty set. */
export async function pricedEventTypesOf(db: Knex | Knex.Transaction, planIds: readonly string[]): Promise<Map<string, Set<string>>> {
  const byPlan = new Map<string, Set<string>>(planIds.map((planId) => [planId, new Set<string>()]));
  if (planIds.length === 0) return byPlan;
  const result = await db.raw<{ rows: { plan_id: string; event_type: string }[] }>(planEventTypesSql('SELECT unnest(?::uuid[])'), [[...new Set(planIds)]]);
  for (const row of result.rows) byPlan.get(row.plan_id)?.add(row.event_type);
  return byPlan;
}

/**
 * Plan charges -> their metrics -> each metric aggregated over a scope of events: the one recipe behind the usage
 * close, re-rating and the real-time preview, so all three rate the same quantities. Pass the charges, or the
 * metrics already looked up with meteredMetricsOf when the caller needs their event types first, and the currency
 * of the plan the charges belong to: only cost tables in it cost the usage (cost_plus prices, margins).
 */
export async function usageForCharges(
  db: Knex | Knex.Transaction,
  chargesOrMetrics: readonly Charge[] | MeteredMetrics,
  scope: UsageScope,
  currency: string,
): Promise<ChargeUsage[]> {
  const metered = 'metrics' in chargesOrMetrics ? chargesOrMetrics : await meteredMetricsOf(db, chargesOrMetrics);
  const costTables = await costTablesOf(db, metered.metrics.map(({ metric }) => metric.code), currency);
  // A metric's quantity, its combinations and its split by cost table are separate reads, and a cost_plus price
  // needs them to count the same events: on the pool, an event ingested between them made rating refuse the usage
  // (missing_cost_segments, a 500 on the preview). So those reads share one snapshot (a caller's transaction
  // keeps its own: a close's claimed events are row-locked).
  const costed = metered.metrics.some(({ metric }) => isCostable(metric) && costTables.has(metric.code));
  if (costed && !(db as Knex.Transaction).isTransaction) {
    return db.transaction((trx) => usageOfMetrics(trx, metered, costTables, scope), { isolationLevel: 'repeatable read', readOnly: true });
  }
  return usageOfMetrics(db, metered, costTables, scope);
}

async function usageOfMetrics(db: Knex | Knex.Transaction, metered: MeteredMetrics, costTables: Map<string, CostTable[]>, scope: UsageScope): Promise<ChargeUsage[]> {
  // One metric after the other inside a transaction (its one connection), side by side on a pool.
  return mapOnConnection(db, metered.metrics, async ({ metric, withEventValues }) =>
    withCosts(
      {
        metricCode: metric.code,
        ...(await aggregateMetric(db, metric, scope, withEventValues)),
        ...(metric.group_by?.length ? { groups: await aggregateMetricGroups(db, metric, scope, withEventValues) } : {}),
      },
      metric.group_by ?? [],
      isCostable(metric) && costTables.has(metric.code) ? await costedUsage(db, metric, costTables.get(metric.code)!, scope) : undefined,
    ),
  );
}

/** Only a count or a non-negative sum splits into per-event shares a cost table can cost (domain/charge-metric-fit.ts). */
function isCostable(metric: MetricRow): boolean {
  return (metric.aggregation === 'count' || metric.aggregation === 'sum') && !metric.allow_negative;
}

/** Attaches the usage's split by cost table (cost_plus prices, margins) to the metric and each of its combinations. */
function withCosts(usage: ChargeUsage, groupBy: readonly string[], costed: CostedUsage | undefined): ChargeUsage {
  if (!costed) return usage;
  return {
    ...usage,
    costs: costed.costs,
    costCurrency: costed.currency,
    ...(usage.groups ? { groups: usage.groups.map((group) => ({ ...group, costs: costed.byCombination.get(dimensionKey(group.dimensions, groupBy)) ?? [] })) } : {}),
  };
}

export interface UsageClosure {
  id: string;
  subscription_id: string;
  customer_id: string;
  period_start: Date;
  period_end: Date;
  totals: UsageTotals;
  event_count: string;
  plan_id: string | null;
  closed_at: Date;
}

export async function findUsageClosure(
  db: Knex | Knex.Transaction,
  subscriptionId: string,
  periodStart: Date,
): Promise<UsageClosure | undefined> {
  return db<UsageClosure>('usage_period_closures').where({ subscription_id: subscriptionId, period_start: periodStart }).first();
}

export interface NewUsageClosure {
  readonly subscriptionId: string;
  readonly customerId: string;
  readonly periodStart: Date;
  readonly periodEnd: Date;
  /** The plan version whose usage charges are closed. */
  readonly planId: string;
  readonly charges: readonly Charge[];
  /**
   * The subscription's billable usage ends where this stretch does, at the end its workflow recorded (a cancellation
   * now, one accepted after a held period end, dunning's end): the close also claims the usage accepted before that
   * end was decided but stamped after it (`claimUsageAcceptedPastTheEnd`).
   */
  readonly endsUsage?: boolean;
}

/**
 * Closes a usage period in the caller's transaction: records the closure, claims every unclaimed event of the
 * plan's metrics in [start, end) and stores their aggregated totals. Each event is claimed by exactly one closure,
 * so it is billed exactly once. When a closure for (subscription, period start) exists, that one is returned.
 */
export async function closeUsage(trx: Knex.Transaction, closure: NewUsageClosure): Promise<UsageClosure> {
  const metered = await meteredMetricsOf(trx, closure.charges);
  const [created] = await trx<UsageClosure>('usage_period_closures')
    .insert({
      subscription_id: closure.subscriptionId,
      customer_id: closure.customerId,
      period_start: closure.periodStart,
      period_end: closure.periodEnd,
      totals: {} as UsageTotals,
      event_count: '0',
      plan_id: closure.planId,
    })
    .onConflict(['subscription_id', 'period_start'])
    .ignore()
    .returning('*');
  if (!created) return (await findUsageClosure(trx, closure.subscriptionId, closure.periodStart))!;

  // The running totals hold open usage only: forget the windows these claims fall in (seeded again on next read).
  if (metered.eventTypes.length) await forgetRollupsOverlapping(trx, closure.customerId, closure.periodStart, closure.periodEnd);
  const claimedInStretch = metered.eventTypes.length
    ? await trx('usage_events')
        .where({ customer_id: closure.customerId })
        .whereNull('period_close_id')
        // A reversed event bills nothing (the totals leave it out), so it is not claimed either: claimed, its reversal
        // (committed before this close's claim) looked like one of a billed outcome and was credited on the next invoice.
        .whereNull('reversed_by_event_id')
        .whereIn('event_type', [...metered.eventTypes])
        .andWhere('occurred_at', '>=', closure.periodStart)
        .andWhere('occurred_at', '<', closure.periodEnd)
        .update({ period_close_id: created.id })
    : 0;
  const claimedPastTheEnd = closure.endsUsage
    ? await claimUsageAcceptedPastTheEnd(trx, closure, metered, String(created.id))
    : await claimUsageAcceptedPastAPlanChange(trx, closure, metered, String(created.id));
  const claimed = claimedInStretch + claimedPastTheEnd;

  const totals: UsageTotals = {};
  // Costed in the currency of the plan the closure records, read here: the costs it keeps cannot be in another.
  const { currency } = await trx('plans').where({ id: closure.planId }).first<{ currency: string }>('currency');
  for (const { metricCode, ...usage } of await usageForCharges(trx, metered, { kind: 'claimed', closeId: String(created.id) }, currency)) {
    totals[metricCode] = usage;
  }
  const [closed] = await trx<UsageClosure>('usage_period_closures')
    .where({ id: created.id })
    .update({ totals: JSON.stringify(totals) as unknown as UsageTotals, event_count: String(claimed) })
    .returning('*');
  // A close of a later period may have committed first (a plan change in this period's grace window closes the next
  // period's first stretch at once): the seat levels it kept lack the changes claimed here, so refresh them. Asked
  // only when this close claimed something, through the (customer, period_end) index.
  if (claimed > 0 && (await trx('usage_period_closures').where({ customer_id: closure.customerId }).andWhere('period_end', '>', closure.periodEnd).first('id'))) {
    await refreshCarriedLevels(trx, String(closed.id));
    return (await trx<UsageClosure>('usage_period_closures').where({ id: closed.id }).first())!;
  }
  return closed;
}

/** Aggregations whose amount does not depend on where in the stretch an event falls (seats and `latest` levels do). */
const TIMELESS_AGGREGATIONS: ReadonlySet<string> = new Set(['count', 'sum', 'max', 'unique_count']);

/**
 * The last close of a subscription's usage also claims the events of its plan's types stamped from the end up to the
 * clock skew ingestion allows after it (MAX_CLOCK_SKEW_MS) that no other subscription of the customer prices then.
 * Ingestion refuses usage stamped past the end only once the end is recorded; an event sent before that (a cancellation
 * now decided a moment later, a client clock a few minutes ahead) was accepted, and the last close, stopping at the
 * end, never claimed it: 40 calls stamped 4 minutes ahead, sent just before a cancellation now, were neither billed nor
 * listed as late usage. Metrics whose amount depends on the event's time in the stretch (seats, `latest`) are left:
 * a level reported after the service ended bills nothing.
 */
async function claimUsageAcceptedPastTheEnd(
  trx: Knex.Transaction,
  closure: NewUsageClosure,
  metered: MeteredMetrics,
  closeId: string,
  pricedAfter: ReadonlySet<string> = new Set(),
): Promise<number> {
  const timed = new Set(metered.metrics.filter(({ metric }) => !TIMELESS_AGGREGATIONS.has(metric.aggregation)).map(({ metric }) => metric.event_type));
  const eventTypes = metered.eventTypes.filter((type) => !timed.has(type) && !pricedAfter.has(type));
  if (eventTypes.length === 0) return 0;
  const until = new Date(closure.periodEnd.getTime() + MAX_CLOCK_SKEW_MS);
  await forgetRollupsOverlapping(trx, closure.customerId, closure.periodEnd, until);
  const result = await trx.raw(
    `UPDATE usage_events u SET period_close_id = ?
      WHERE u.customer_id = ? AND u.period_close_id IS NULL AND u.reversed_by_event_id IS NULL AND u.reverses_event_id IS NULL
        AND u.event_type = ANY(?::text[]) AND u.occurred_at >= ? AND u.occurred_at <= ?
        AND NOT EXISTS (SELECT 1 FROM subscriptions s
                         WHERE s.customer_id = u.customer_id AND s.id <> ? AND s.start_at <= u.occurred_at
                           AND coalesce(${usageEndSql('s')} > u.occurred_at, true)
                           AND u.event_type IN (SELECT event_type FROM (${planEventTypesSql('s.plan_id')}) metered))
        -- Nor what a later change of this subscription prices again by then (one in the grace window after a scheduled one).
        AND NOT EXISTS (SELECT 1 FROM plan_changes later
                         WHERE later.subscription_id = ? AND later.change_at > ? AND later.change_at <= u.occurred_at
                           AND u.event_type IN (SELECT event_type FROM (${planEventTypesSql('later.new_plan_id')}) metered))`,
    [closeId, closure.customerId, eventTypes, closure.periodEnd, until, closure.subscriptionId, closure.subscriptionId, closure.periodEnd],
  );
  return result.rowCount ?? 0;
}

/**
 * A stretch cut by a plan change (an immediate one, or one scheduled for the period's end: plan_changes holds both, at
 * their instant) ends the types the old plan meters and the new one does not: for them its close is the last, and
 * claims what was accepted before the change but stamped up to the clock skew after it, as the last close of a
 * cancellation does. Accepted, such usage was claimed by no close (the new plan's does not meter it): 4 minutes stamped
 * 3 minutes ahead, sent just before a change from calls and minutes to calls only, billed nothing. Once the plan is
 * switched, ingestion refuses them (no plan prices the type then). A type both plans meter is the new plan's past the
 * change, as any event stamped there. One probe of the (subscription, change_at) index when no change cuts here.
 */
async function claimUsageAcceptedPastAPlanChange(trx: Knex.Transaction, closure: NewUsageClosure, metered: MeteredMetrics, closeId: string): Promise<number> {
  if (metered.eventTypes.length === 0) return 0;
  const change: { new_plan_id: string } | undefined = await trx('plan_changes').where({ subscription_id: closure.subscriptionId, change_at: closure.periodEnd }).first('new_plan_id');
  if (!change) return 0;
  const pricedAfter = (await pricedEventTypesOf(trx, [change.new_plan_id])).get(change.new_plan_id) ?? new Set<string>();
  return claimUsageAcceptedPastTheEnd(trx, closure, metered, closeId, pricedAfter);
}

/** The ids of unclaimed (late) events of these event types in [from, to): what a re-rating with late usage bills. */
export async function lateEventIds(
  db: Knex | Knex.Transaction,
  customerId: string,
  eventTypes: readonly string[],
  from: Date,
  to: Date,
): Promise<string[]> {
  const rows: { id: string }[] = await db('usage_events')
    .where({ customer_id: customerId })
    .whereNull('period_close_id')
    // A late outcome reversed before it was billed bills nothing: claimed, its reversal would look like one of an
    // invoiced outcome (arrived after the close) and be credited on the next invoice for usage never billed.
    .whereNull('reversed_by_event_id')
    .whereIn('event_type', [...eventTypes])
    .andWhere('occurred_at', '>=', from)
    .andWhere('occurred_at', '<', to)
    .select('id');
  return rows.map((row) => String(row.id));
}

/**
 * Claims late events into the closure of the period they fall in, unless something claimed them meanwhile, and
 * refreshes the seat levels that closure carries: a late seat change now counted there must reach the next
 * period's opening level (store/seat-usage.ts), which no longer sees it as unclaimed.
 */
export async function claimLateEvents(trx: Knex.Transaction, eventIds: readonly string[], closeId: string): Promise<void> {
  const spans: { customer_id: string; first: Date; last: Date }[] = await trx('usage_events')
    .whereIn('id', [...eventIds])
    .groupBy('customer_id')
    .select('customer_id', trx.raw('min(occurred_at) AS first'), trx.raw('max(occurred_at) AS last'));
  for (const span of spans) await forgetRollupsOverlapping(trx, span.customer_id, span.first, new Date(span.last.getTime() + 1));
  await trx('usage_events').whereIn('id', [...eventIds]).whereNull('period_close_id').update({ period_close_id: closeId });
  await refreshCarriedLevels(trx, closeId);
}

/**
 * Recomputes the closing level of each seat-like metric that a closure and every later closure of its customer
 * carry, in period order (each one opens at the level the one before carries). Billed quantities stay as they are.
 * Re-rating usually concerns a recent period, so this touches one or two closures.
 */
async function refreshCarriedLevels(trx: Knex.Transaction, closeId: string): Promise<void> {
  const closure = await trx<UsageClosure>('usage_period_closures').where({ id: closeId }).first();
  if (!closure) return;
  const chain = await trx<UsageClosure>('usage_period_closures')
    .where({ customer_id: closure.customer_id })
    .andWhere('period_end', '>=', closure.period_end)
    .orderBy([{ column: 'period_end' }, { column: 'id' }]);
  for (const link of chain) {
    const carried = Object.keys(link.totals).filter((code) => link.totals[code].closingLevel !== undefined);
    if (carried.length === 0) continue;
    const totals: UsageTotals = { ...link.totals };
    for (const metric of await findMetricsByCode(trx, carried)) {
      const { closingLevel } = await aggregateMetric(trx, metric, { kind: 'claimed', closeId: String(link.id) }, false);
      totals[metric.code] = { ...totals[metric.code], closingLevel };
    }
    await trx('usage_period_closures').where({ id: link.id }).update({ totals: JSON.stringify(totals) });
  }
}

export interface LateUsageEvent {
  event_id: string;
  event_type: string;
  occurred_at: Date;
  received_at: Date;
  properties: Record<string, unknown>;
}

/**
 * Events that fall inside a subscription's already-closed usage periods but were not counted by the close:
 * they arrived after it. They wait here, visibly pending, until a re-rating bills them.
 */
export async function listLateUsage(db: Knex, subscriptionId: string, customerId: string, limit = 500): Promise<LateUsageEvent[]> {
  const spans = await db.raw<{ rows: { from: Date | null; to: Date | null }[] }>(
    'SELECT min(period_start) AS "from", max(period_end) AS "to" FROM usage_period_closures WHERE subscription_id = ?',
    [subscriptionId],
  );
  const span = spans.rows[0];
  if (!span?.from || !span.to) return [];
  return db('usage_events')
    .where('customer_id', customerId)
    .whereNull('period_close_id')
    .whereNull('reversed_by_event_id') // reversed before it was billed: nothing pending (lateEventIds leaves it too)
    .andWhere('occurred_at', '>=', span.from)
    .andWhere('occurred_at', '<', span.to)
    // A service gap (from a billed end to a win-back restart) lies between closures: no re-rating bills what was
    // stored there before ingestion refused it, so it is not pending either.
    .whereNotExists(db('subscriptions as s').where('s.id', subscriptionId).whereRaw('s.service_gaps @> usage_events.occurred_at').select(db.raw('1')))
    // Pending only where a re-rating would bill it (lateEventIds takes the closure plan's event types, in its period):
    // an event of a type that closure's plan does not meter (of another subscription's plan, or of none) is not.
    .whereExists(
      db('usage_period_closures as c')
        .where('c.subscription_id', subscriptionId)
        .whereRaw('usage_events.occurred_at >= c.period_start AND usage_events.occurred_at < c.period_end')
        .whereRaw(`(c.plan_id IS NULL OR usage_events.event_type IN (SELECT event_type FROM (${planEventTypesSql('c.plan_id')}) metered))`)
        .select(db.raw('1')),
    )
    .orderBy('occurred_at')
    .limit(limit)
    .select('event_id', 'event_type', 'occurred_at', 'received_at', 'properties');
}

export type UsageRefusal = 'usage_blocked' | 'usage_cap_reached';

/**
 * A stretch in which one subscription refuses usage: paused (under the reject policy) or suspended
 * (`usage_blocked`), or past its plan's hard cap for a period (`usage_cap_reached`).
 */
export interface UsageStop extends UncoveredStretch {
  readonly subscriptionId: string;
  readonly refusal: UsageRefusal;
}

/** What ingestion must know of the customers' subscriptions before it stores their usage: one query. */
export interface UsageAcceptance {
  /**
   * For each customer, the stretches in which a subscription of theirs refuses usage, judged by the event's time
   * whenever it arrives (`usageStopAt`): a block from its start on while it lasts (`until` null) and past blocks
   * (migration 0710; a block recorded before its start was kept refuses every instant), and each capped period
   * (migration 0730), to its end or to the instant a plan change lifted the cap. Judged by arrival, last week's
   * usage sent after a suspension began was refused although its period bills it (lost), usage of a pause or of a
   * capped period sent after it was billed, and an uncapped period's usage was refused once the next was capped.
   * Customers with none are absent.
   */
  readonly stops: Map<string, UsageStop[]>;
  /**
   * Customers with several subscriptions or a plan change: only for them can an event's type be priced at one time
   * and not at another, so only they need `pricedStretchesOf` (the usual customer costs no further query).
   */
  readonly severalPlans: Set<string>;
  /**
   * For each customer, the stretches after their first subscription's start that no subscription bills: from an end
   * to the next subscription's start or to a win-back restart of the same one (its service gaps), and from the last
   * end on (`until` null) once every subscription has ended or is ending. Usage stamped there could never be billed,
   * so ingestion refuses it. Customers with none are absent.
   */
  readonly uncovered: Map<string, UncoveredStretch[]>;
}

/**
 * Where each subscription's billable usage stops: the end its workflow recorded when it decided it (a cancellation
 * now is recorded before its grace window, which the status and the closing invoice wait out); else a pending
 * cancellation's period end, where the closing invoice will stop; else a canceled one's last usage stretch closed by
 * an invoice (its cancellation instant when none was). Null while it goes on. `row`: the subscriptions row's name
 * in the statement (the status mirror writes this very end down: store/subscriptions.ts).
 */
export const usageEndSql = (row: string): string => `CASE WHEN ${row}.usage_ends_at IS NOT NULL THEN ${row}.usage_ends_at
                            WHEN ${row}.status = 'pending_cancellation' THEN ${row}.current_period_end
                            WHEN ${row}.status = 'canceled' THEN coalesce((SELECT max(c.period_end) FROM usage_period_closures c WHERE c.subscription_id = ${row}.id), ${row}.canceled_at)
                       END`;
const USAGE_END_SQL = usageEndSql('s');

/**
 * A tstzmultirange column of the row `s` as JSON [from, until] pairs, null when empty (the usual row pays only the
 * emptiness test): its service gaps (migration 0660: from a billed end to a win-back restart), its past usage
 * blocks (migration 0710) and its capped stretches (migration 0730).
 */
const rangesSql = (column: string): string => `CASE WHEN NOT isempty(s.${column})
                            THEN (SELECT json_agg(json_build_array(lower(r), upper(r))) FROM unnest(s.${column}) r)
                       END`;

/** One range as `rangesSql` holds it: [from, until] as ISO instants. */
type RangeRow = [string, string];

function stretchOf([from, until]: RangeRow): ServiceGap {
  return { from: new Date(from), until: new Date(until) };
}

/** A row's stops: its past blocks, its current block from its start on, and its capped stretches. */
function stopsOf(row: { id: string; blocked: boolean; blocked_since: Date | null; past_blocks: RangeRow[] | null; capped: RangeRow[] | null }): UsageStop[] {
  const blocks: UncoveredStretch[] = [...(row.past_blocks ?? []).map(stretchOf), ...(row.blocked ? [{ from: row.blocked_since ?? EARLIEST_INSTANT, until: null }] : [])];
  return [
    ...blocks.map((block) => ({ ...block, subscriptionId: row.id, refusal: 'usage_blocked' as const })),
    ...(row.capped ?? []).map((range) => ({ ...stretchOf(range), subscriptionId: row.id, refusal: 'usage_cap_reached' as const })),
  ];
}

export async function usageAcceptance(db: Knex, customerIds: readonly string[]): Promise<UsageAcceptance> {
  if (customerIds.length === 0) return { stops: new Map(), severalPlans: new Set(), uncovered: new Map() };
  const result = await db.raw<{ rows: { id: string; customer_id: string; blocked: boolean; blocked_since: Date | null; past_blocks: RangeRow[] | null; plan_changed: boolean; capped: RangeRow[] | null; starts_at: Date; ends_at: Date | null; gaps: RangeRow[] | null }[] }>(
    `SELECT s.id, s.customer_id, s.usage_blocked AS blocked, s.usage_blocked_since AS blocked_since, ${rangesSql('usage_blocked_stretches')} AS past_blocks,
            EXISTS (SELECT 1 FROM plan_changes pc WHERE pc.subscription_id = s.id) AS plan_changed, ${rangesSql('usage_capped_stretches')} AS capped,
            s.start_at AS starts_at, ${USAGE_END_SQL} AS ends_at, ${rangesSql('service_gaps')} AS gaps
       FROM subscriptions s
      WHERE s.customer_id = ANY(?::uuid[])`,
    [[...new Set(customerIds)]],
  );
  const stops = new Map<string, UsageStop[]>();
  const severalPlans = new Set<string>();
  const spansByCustomer = new Map<string, BilledSpan[]>();
  for (const row of result.rows) {
    const rowStops = stopsOf(row);
    if (rowStops.length) stops.set(row.customer_id, [...(stops.get(row.customer_id) ?? []), ...rowStops]);
    if (row.plan_changed || spansByCustomer.has(row.customer_id)) severalPlans.add(row.customer_id);
    const spans = spansByCustomer.get(row.customer_id) ?? [];
    spans.push(...spansAroundGaps({ start: row.starts_at, end: row.ends_at }, (row.gaps ?? []).map(stretchOf)));
    spansByCustomer.set(row.customer_id, spans);
  }
  const uncovered = new Map<string, UncoveredStretch[]>();
  for (const [customerId, spans] of spansByCustomer) {
    const stretches = uncoveredStretches(spans);
    if (stretches.length) uncovered.set(customerId, stretches);
  }
  return { stops, severalPlans, uncovered };
}

/**
 * For each customer with several subscriptions or a plan change, the stretches of their subscriptions' billed time
 * and the event types each prices (domain/usage-events.ts `pricedStretches`): ingestion refuses an event of a type
 * one of them prices, stamped where none does, which no usage close would claim (a close claims only its plan's
 * event types, in its own period). Everyone else is absent: one plan over one span prices a type everywhere or
 * nowhere. Asked only for customers `usageAcceptance` finds with several plans: two queries. Each stretch names its
 * subscription: a usage block or cap refuses only the events of the types the blocked subscription prices then.
 */
export async function pricedStretchesOf(db: Knex, customerIds: readonly string[]): Promise<Map<string, SubscriptionPricedStretch[]>> {
  const byCustomer = new Map<string, SubscriptionPricedStretch[]>();
  if (customerIds.length === 0) return byCustomer;
  const result = await db.raw<{ rows: { id: string; customer_id: string; plan_id: string; starts_at: Date; ends_at: Date | null; changes: [string, string][] }[] }>(
    `WITH subs AS (
       SELECT s.id, s.customer_id, s.plan_id, s.start_at AS starts_at, ${USAGE_END_SQL} AS ends_at,
              (SELECT json_agg(json_build_array(pc.change_at, pc.old_plan_id) ORDER BY pc.change_at) FROM plan_changes pc WHERE pc.subscription_id = s.id) AS changes,
              count(*) OVER (PARTITION BY s.customer_id) AS siblings
         FROM subscriptions s
        WHERE s.customer_id = ANY(?::uuid[])
     )
     SELECT id, customer_id, plan_id, starts_at, ends_at, coalesce(changes, '[]') AS changes
       FROM subs
      WHERE customer_id IN (SELECT customer_id FROM subs WHERE siblings > 1 OR changes IS NOT NULL)`,
    [[...new Set(customerIds)]],
  );
  if (result.rows.length === 0) return byCustomer;
  const planIds = new Set(result.rows.flatMap((row) => [row.plan_id, ...row.changes.map(([, oldPlanId]) => oldPlanId)]));
  const eventTypesByPlan = await pricedEventTypesOf(db, [...planIds]);
  const none = new Set<string>();
  for (const row of result.rows) {
    const history = { start: row.starts_at, end: row.ends_at, planId: row.plan_id, changes: row.changes.map(([at, oldPlanId]) => ({ at: new Date(at), oldPlanId })) };
    const stretches = pricedStretches(history, (planId) => eventTypesByPlan.get(planId) ?? none).map((stretch) => ({ ...stretch, subscriptionId: row.id }));
    byCustomer.set(row.customer_id, [...(byCustomer.get(row.customer_id) ?? []), ...stretches]);
  }
  return byCustomer;
}

/** The earliest instant a Date holds: a block whose start was not recorded refuses usage of any time. */
const EARLIEST_INSTANT = new Date(-8.64e15);

/** A priced stretch of one subscription (`pricedStretchesOf`). */
export type SubscriptionPricedStretch = PricedStretch & { readonly subscriptionId: string };

const holds = ({ from, until }: UncoveredStretch, at: Date): boolean => at >= from && (until === null || at < until);

/**
 * The stop that refuses an event of `eventType` stamped `at`, if any: one of the subscription that prices the type at
 * that instant. Events name a customer, and at most one subscription prices a type at an instant (docs/api.md "One
 * subscription per event type"): a pause of one subscription must not refuse the usage another bills. `priced` is
 * known for customers with several plans only; a customer with one plan has one subscription, whose stops refuse all
 * its usage. An event of a type no subscription prices then bills nothing and is refused by any stop then. A block
 * is named before a cap: only a cap admits corrections.
 */
export function usageStopAt(stops: readonly UsageStop[] | undefined, at: Date, eventType: string, priced: readonly SubscriptionPricedStretch[] | undefined): UsageStop | undefined {
  const holding = (stops ?? []).filter((stop) => holds(stop, at));
  if (holding.length === 0) return undefined;
  const pricing = new Set((priced ?? []).filter((stretch) => stretch.eventTypes.has(eventType) && holds(stretch, at)).map((stretch) => stretch.subscriptionId));
  const refusing = pricing.size === 0 ? holding : holding.filter((stop) => pricing.has(stop.subscriptionId));
  return refusing.find((stop) => stop.refusal === 'usage_blocked') ?? refusing[0];
}
