import type { Knex } from 'knex';
import { Aggregation, MetricRow } from './catalog';

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
 * its customer's latest closed usage period is marked late as it is stored. Returns the rows inserted.
 */
export async function insertUsageEvents(db: Knex, events: readonly NewUsageEvent[]): Promise<InsertedUsageEvent[]> {
  if (events.length === 0) return [];
  const result = await db.raw<{ rows: InsertedUsageEvent[] }>(
    `INSERT INTO usage_events (customer_id, event_id, event_type, occurred_at, properties, late)
     SELECT e.customer_id, e.event_id, e.event_type, e.occurred_at, e.properties,
            coalesce(e.occurred_at < (SELECT max(c.period_end) FROM usage_period_closures c WHERE c.customer_id = e.customer_id), false)
     FROM unnest(?::uuid[], ?::text[], ?::text[], ?::timestamptz[], ?::jsonb[])
          AS e(customer_id, event_id, event_type, occurred_at, properties)
     ON CONFLICT (customer_id, event_id) DO NOTHING
     RETURNING customer_id, event_id`,
    [
      events.map((event) => event.customerId),
      events.map((event) => event.eventId),
      events.map((event) => event.eventType),
      events.map((event) => event.occurredAt.toISOString()),
      events.map((event) => JSON.stringify(event.properties)),
    ],
  );
  return result.rows;
}

export interface MetricUsage {
  /** Aggregated quantity as a decimal string. */
  readonly quantity: string;
  readonly eventCount: number;
  /** Per-event values, for percentage (outcome) charges. */
  readonly eventValues?: string[];
}

export type UsageTotals = Record<string, MetricUsage>;

/** Which events an aggregation reads: a closed period's claimed events, or the still-open (unclaimed) ones. */
export type UsageScope =
  | { readonly kind: 'claimed'; readonly closeId: string }
  /** A closed period's events plus the late ones that fall in it (re-rating with late usage). */
  | { readonly kind: 'claimed_and_late'; readonly closeId: string; readonly customerId: string; readonly from: Date; readonly to: Date }
  | { readonly kind: 'unclaimed'; readonly customerId: string; readonly from: Date; readonly to: Date };

/** A property value that reads as a number; anything else counts as absent, never as 0. */
export const NUMERIC_TEXT = String.raw`^-?[0-9]+(\.[0-9]+)?$`;

/** The SQL of a metric's aggregation. A property value that is not a number counts as absent, never as 0. */
export function aggregationSql(aggregation: Aggregation): string {
  switch (aggregation) {
    case 'count':
      return 'count(*)';
    case 'sum':
      return 'coalesce(sum(value), 0)';
    case 'max':
      return 'coalesce(max(value), 0)';
    case 'unique_count':
      return 'count(DISTINCT raw_value) FILTER (WHERE raw_value IS NOT NULL)';
    case 'latest':
      return 'coalesce((array_agg(value ORDER BY occurred_at DESC, id DESC) FILTER (WHERE value IS NOT NULL))[1], 0)';
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
    scope.kind === 'claimed' ? 'period_close_id = ?' : scope.kind === 'unclaimed' ? unclaimedSql : `(period_close_id = ? OR (${unclaimedSql}))`;
  const scopeBindings =
    scope.kind === 'claimed'
      ? [scope.closeId]
      : scope.kind === 'unclaimed'
        ? [scope.customerId, scope.from, scope.to]
        : [scope.closeId, scope.customerId, scope.from, scope.to];
  const result = await db.raw<{ rows: { quantity: string; event_count: string; event_values: string[] | null }[] }>(
    `WITH scoped AS (
       SELECT id, occurred_at, properties ->> ? AS raw_value,
              CASE WHEN properties ->> ? ~ ? THEN (properties ->> ?)::numeric END AS value
       FROM usage_events
       WHERE ${scopeSql} AND event_type = ? AND properties @> ?::jsonb
     )
     SELECT (${aggregationSql(metric.aggregation)})::text AS quantity,
            count(*) AS event_count,
            ${withEventValues ? `array_agg(value::text ORDER BY id) FILTER (WHERE value IS NOT NULL)` : 'NULL'} AS event_values
     FROM scoped`,
    [property, property, NUMERIC_TEXT, property, ...scopeBindings, metric.event_type, JSON.stringify(metric.filters ?? {})],
  );
  const row = result.rows[0];
  return {
    quantity: row.quantity,
    eventCount: Number(row.event_count),
    ...(withEventValues ? { eventValues: row.event_values ?? [] } : {}),
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
    .andWhere('occurred_at', '>=', span.from)
    .andWhere('occurred_at', '<', span.to)
    .orderBy('occurred_at')
    .limit(limit)
    .select('event_id', 'event_type', 'occurred_at', 'received_at', 'properties');
}

export type UsageRefusal = 'usage_blocked' | 'usage_cap_reached';

/**
 * Customers whose usage is refused right now: a subscription paused (under the reject policy) or suspended, or
 * past its plan's hard cap for the current period. Both are rare, and partial indexes keep this lookup small.
 */
export async function usageRefusals(db: Knex, customerIds: readonly string[], now: Date): Promise<Map<string, UsageRefusal>> {
  if (customerIds.length === 0) return new Map();
  const rows: { customer_id: string; blocked: boolean }[] = await db('subscriptions')
    .whereIn('customer_id', [...new Set(customerIds)])
    .andWhere((query) => query.where('usage_blocked', true).orWhere('usage_capped_until', '>', now))
    .groupBy('customer_id')
    .select('customer_id', db.raw('bool_or(usage_blocked) AS blocked'));
  return new Map(rows.map((row) => [row.customer_id, row.blocked ? 'usage_blocked' : 'usage_cap_reached']));
}
