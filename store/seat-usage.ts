/**
 * The usage of a seat-like metric (`prorated_sum` / `prorated_latest`, domain/seat-metrics.ts) over one period:
 * the level over time, prorated by domain/seat-proration.ts, from the level carried into the period.
 *
 * Raw events, not the running totals (store/rollups.ts): proration needs each change's time, and seat changes
 * are few (a handful per customer per period), so reading them costs little. The opening level never needs all
 * of history: each period close keeps the level it ends at (`closingLevel` in its totals), and the next period
 * starts from the latest one kept before it, plus the late changes that arrived after that close (still unclaimed,
 * read through usage_events_unclaimed_idx). A customer's first period starts from its unclaimed changes before it
 * (events before the first subscription start are refused at ingestion, so there are none in the usual case).
 */
import type { Knex } from 'knex';
import { isProratedAggregation, levelAfter, unitChangeOf, type CarriedLevel, type ProratedAggregation } from '../domain/seat-metrics';
import { proratedUnits, type UnitChange } from '../domain/seat-proration';
import type { MetricRow } from './catalog';
import type { MetricUsage, UsageScope } from './usage';

export { isProratedAggregation };

/** What the caller's scope selects, as SQL over usage_events (built once in store/usage.ts). */
export interface ScopeFilter {
  readonly sql: string;
  readonly bindings: readonly Knex.Value[];
}

interface Period {
  readonly customerId: string;
  readonly start: Date;
  readonly end: Date;
  /** The billing period this is a stretch of, when a plan change or a cancellation now cut it short (else none). */
  readonly billingPeriod?: { readonly start: Date; readonly end: Date };
}

/** The period a scope covers: a closed period's own bounds, or the window the caller names. */
async function periodOf(db: Knex | Knex.Transaction, scope: UsageScope): Promise<Period> {
  if (scope.kind !== 'claimed') {
    const window = { customerId: scope.customerId, start: scope.from, end: scope.to };
    return { ...window, ...(await billingPeriodOfStretch(db, { customerId: scope.customerId }, window)) };
  }
  const closure = await db('usage_period_closures').where({ id: scope.closeId }).first('subscription_id', 'customer_id', 'period_start', 'period_end');
  if (!closure) throw new Error(`usage closure ${scope.closeId} not found`);
  const stretch = { customerId: closure.customer_id, start: closure.period_start, end: closure.period_end };
  return { ...stretch, ...(await billingPeriodOfStretch(db, { subscriptionId: closure.subscription_id }, stretch)) };
}

/**
 * The billing period a stretch is a part of, when an immediate plan change starts or ends it (as the allowance share
 * finds it, store/plan-changes.ts) or a cancellation now ends it: seats are prorated over that period, so each
 * stretch's invoice bills its share of it. Without it each stretch counted as a whole period and seats kept all
 * month were billed on both invoices of a plan change.
 */
async function billingPeriodOfStretch(
  db: Knex | Knex.Transaction,
  owner: { readonly subscriptionId: string } | { readonly customerId: string },
  stretch: { readonly start: Date; readonly end: Date },
): Promise<Pick<Period, 'billingPeriod'>> {
  const row: { period_start: Date; period_end: Date } | undefined = await db('plan_changes')
    .join('subscriptions', 'subscriptions.id', 'plan_changes.subscription_id')
    .where('subscriptionId' in owner ? { 'plan_changes.subscription_id': owner.subscriptionId } : { 'subscriptions.customer_id': owner.customerId })
    .whereIn('plan_changes.change_at', [stretch.start, stretch.end])
    .whereNotNull('plan_changes.period_start')
    .andWhere('plan_changes.period_start', '<=', stretch.start)
    .andWhere('plan_changes.period_end', '>', stretch.start)
    .orderBy('plan_changes.change_at')
    .first('plan_changes.period_start', 'plan_changes.period_end');
  // A pause after the change moves the period's end later than the change recorded it: the stretch then runs to it.
  if (row) return { billingPeriod: { start: row.period_start, end: row.period_end > stretch.end ? row.period_end : stretch.end } };
  if (!('subscriptionId' in owner)) return {};
  // A cancellation now ends the last stretch early (its usage end, recorded when decided): still a part of its
  // billing period, which the subscription keeps as its current one. Prorated over the stretch alone, 3 seats for
  // the first 10 days of a month billed 3 whole seats on the closing invoice instead of 1.
  const ended: { current_period_start: Date; current_period_end: Date } | undefined = await db('subscriptions')
    .where({ id: owner.subscriptionId, usage_ends_at: stretch.end })
    .andWhere('current_period_start', '<=', stretch.start)
    .andWhere('current_period_end', '>=', stretch.end)
    .first('current_period_start', 'current_period_end');
  return ended ? { billingPeriod: { start: ended.current_period_start, end: ended.current_period_end } } : {};
}

interface CarryRow {
  closed_at: Date;
  closing_level: CarriedLevel;
}

/** The level kept by the latest close of this customer's metric that ended at or before `start`. */
async function carriedLevel(db: Knex | Knex.Transaction, metric: MetricRow, period: Period): Promise<CarryRow | undefined> {
  const result = await db.raw<{ rows: CarryRow[] }>(
    `SELECT closed_at, totals -> ? -> 'closingLevel' AS closing_level
     FROM usage_period_closures
     WHERE customer_id = ? AND period_end <= ? AND totals -> ? -> 'closingLevel' IS NOT NULL
     ORDER BY period_end DESC, id DESC
     LIMIT 1`,
    [metric.code, period.customerId, period.start, metric.code],
  );
  return result.rows[0];
}

interface ChangeRow {
  occurred_at: Date;
  value: string;
}

const VALUE_SQL = `(CASE WHEN properties ->> ? ~ ? THEN (properties ->> ?)::numeric END)::text`;
const NOT_REVERSED = 'reverses_event_id IS NULL AND reversed_by_event_id IS NULL';

function changesOf(aggregation: ProratedAggregation, rows: readonly ChangeRow[]): UnitChange[] {
  return rows.map((row) => unitChangeOf(aggregation, new Date(row.occurred_at).toISOString(), row.value));
}

/** Changes before the period start that the carried level has not seen: unclaimed, received after its close. */
async function lateChangesBefore(
  db: Knex | Knex.Transaction,
  metric: MetricRow,
  period: Period,
  numericPattern: string,
  carry: CarryRow | undefined,
): Promise<ChangeRow[]> {
  const property = metric.property ?? '';
  const result = await db.raw<{ rows: ChangeRow[] }>(
    `SELECT occurred_at, value FROM (
       SELECT id, occurred_at, ${VALUE_SQL} AS value
       FROM usage_events
       WHERE period_close_id IS NULL AND customer_id = ? AND event_type = ? AND occurred_at < ?
         AND properties @> ?::jsonb AND ${NOT_REVERSED}
         ${carry ? 'AND received_at > ?' : ''}
     ) changes
     WHERE value IS NOT NULL
     ORDER BY occurred_at, id`,
    [property, numericPattern, property, period.customerId, metric.event_type, period.start, JSON.stringify(metric.filters ?? {}), ...(carry ? [carry.closed_at] : [])],
  );
  return result.rows;
}

/** The scope's own changes (the period's events), in time order. */
async function changesInScope(db: Knex | Knex.Transaction, metric: MetricRow, scope: ScopeFilter, numericPattern: string): Promise<{ rows: ChangeRow[]; eventCount: number }> {
  const property = metric.property ?? '';
  const result = await db.raw<{ rows: (ChangeRow & { id: string })[] }>(
    `SELECT id, occurred_at, ${VALUE_SQL} AS value
     FROM usage_events
     WHERE ${scope.sql} AND event_type = ? AND properties @> ?::jsonb AND ${NOT_REVERSED}
     ORDER BY occurred_at, id`,
    [property, numericPattern, property, ...scope.bindings, metric.event_type, JSON.stringify(metric.filters ?? {})],
  );
  return { rows: result.rows.filter((row) => row.value !== null), eventCount: result.rows.length };
}

/**
 * A seat-like metric's usage over a scope: quantity = Σ level × seconds / period seconds (domain rule), with the
 * level opening at what earlier periods left, and the level this period ends at (kept by the close).
 */
export async function aggregateProratedMetric(
  db: Knex | Knex.Transaction,
  metric: MetricRow,
  scope: UsageScope,
  scopeFilter: ScopeFilter,
  numericPattern: string,
): Promise<MetricUsage> {
  const aggregation = metric.aggregation as ProratedAggregation;
  const period = await periodOf(db, scope);
  // A change the carried level counted cannot be reversed afterwards (store/reversals.ts refuses it once invoiced).
  const carry = await carriedLevel(db, metric, period);
  const late = await lateChangesBefore(db, metric, period, numericPattern, carry);
  const opening = levelAfter(aggregation, carry?.closing_level ?? { level: '0', setAt: null }, changesOf(aggregation, late));
  const { rows, eventCount } = await changesInScope(db, metric, scopeFilter, numericPattern);
  const changes = changesOf(aggregation, rows).filter((change) => Date.parse(change.at) < period.end.getTime());
  const prorated = proratedUnits({
    period: { start: period.start.toISOString(), end: period.end.toISOString() },
    ...(period.billingPeriod ? { billingPeriod: { start: period.billingPeriod.start.toISOString(), end: period.billingPeriod.end.toISOString() } } : {}),
    openingUnits: opening.level,
    changes,
  });
  return {
    quantity: prorated.quantity,
    eventCount,
    openingLevel: opening.level,
    closingLevel: levelAfter(aggregation, opening, changes),
  };
}
