/**
 * The usage of a seat-like metric (`prorated_sum` / `prorated_latest`, domain/seat-metrics.ts) over one period:
 * the level over time, prorated by domain/seat-proration.ts, from the level carried into the period.
 *
 * Raw events, not the running totals (store/rollups.ts): proration needs each change's time, and seat changes
 * are few (a handful per customer per period), so reading them costs little. The opening level never needs all
 * of history: each period close keeps the level it ends at (`closingLevel` in its totals) and the part of it made of
 * claimed changes (`closingLevel.claimed`); the next period starts from the latest claimed part kept before it, plus
 * every change before its start that is still unclaimed (late, read through usage_events_unclaimed_idx), plus any
 * claimed by a close that kept no level of the metric. Never "the changes received after that close": received_at
 * and closed_at are transaction starts, not what the close's reads saw, so a change stored while a close ran was
 * either lost (began before the close, stored after it) or counted twice (a late one stored after the close began,
 * before it read). A customer's first period starts from every change before it (events before the first
 * subscription start are refused at ingestion, so there are none in the usual case).
 */
import type { Knex } from 'knex';
import { isProratedAggregation, levelAfter, unitChangeOf, type CarriedLevel, type ProratedAggregation } from '../domain/seat-metrics';
import { Dec } from '../domain/money';
import { proratedUnits, SeatProrationError, type UnitChange } from '../domain/seat-proration';
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
  period_end: Date;
  claimed: NonNullable<CarriedLevel['claimed']>;
}

/**
 * The claimed part of the level kept by the latest close of this customer's metric that ended at or before `start`.
 * A close kept before that part existed is passed over (the opening is then counted from the changes themselves).
 */
async function carriedLevel(db: Knex | Knex.Transaction, metric: MetricRow, period: Period): Promise<CarryRow | undefined> {
  const result = await db.raw<{ rows: { period_end: Date; claimed: CarryRow['claimed'] | null }[] }>(
    `SELECT period_end, totals -> ? -> 'closingLevel' -> 'claimed' AS claimed
     FROM usage_period_closures
     WHERE customer_id = ? AND period_end <= ? AND totals -> ? -> 'closingLevel' IS NOT NULL
     ORDER BY period_end DESC, id DESC
     LIMIT 1`,
    [metric.code, period.customerId, period.start, metric.code],
  );
  const row = result.rows[0];
  return row?.claimed ? { period_end: row.period_end, claimed: row.claimed } : undefined;
}

interface ChangeRow {
  occurred_at: Date;
  value: string;
  claimed: boolean;
}

const VALUE_SQL = `(CASE WHEN properties ->> ? ~ ? THEN (properties ->> ?)::numeric END)::text`;
const NOT_REVERSED = 'reverses_event_id IS NULL AND reversed_by_event_id IS NULL';

function changesOf(aggregation: ProratedAggregation, rows: readonly ChangeRow[]): UnitChange[] {
  return rows.map((row) => unitChangeOf(aggregation, new Date(row.occurred_at).toISOString(), row.value));
}

/**
 * Changes before the period start that the carried claimed level does not hold: every unclaimed one (through
 * usage_events_unclaimed_idx), and the claimed ones of closes after the carry's (closes that kept no level of the
 * metric; all closes when nothing is carried), through usage_events_period_close_idx.
 */
async function changesBeforeNotCarried(
  db: Knex | Knex.Transaction,
  metric: MetricRow,
  period: Period,
  numericPattern: string,
  carry: CarryRow | undefined,
): Promise<ChangeRow[]> {
  const property = metric.property ?? '';
  const filters = JSON.stringify(metric.filters ?? {});
  const result = await db.raw<{ rows: ChangeRow[] }>(
    `SELECT occurred_at, value, claimed FROM (
       SELECT id, occurred_at, ${VALUE_SQL} AS value, false AS claimed
       FROM usage_events
       WHERE period_close_id IS NULL AND customer_id = ? AND event_type = ? AND occurred_at < ?
         AND properties @> ?::jsonb AND ${NOT_REVERSED}
       UNION ALL
       SELECT id, occurred_at, ${VALUE_SQL} AS value, true AS claimed
       FROM usage_events
       WHERE period_close_id IN (SELECT id FROM usage_period_closures WHERE customer_id = ? AND period_start < ? ${carry ? 'AND period_end > ?' : ''})
         AND customer_id = ? AND event_type = ? AND occurred_at < ?
         AND properties @> ?::jsonb AND ${NOT_REVERSED}
     ) changes
     WHERE value IS NOT NULL
     ORDER BY occurred_at, id`,
    [
      ...[property, numericPattern, property, period.customerId, metric.event_type, period.start, filters],
      ...[property, numericPattern, property, period.customerId, period.start, ...(carry ? [carry.period_end] : [])],
      ...[period.customerId, metric.event_type, period.start, filters],
    ],
  );
  return result.rows;
}

/** The scope's own changes (the period's events), in time order. */
async function changesInScope(db: Knex | Knex.Transaction, metric: MetricRow, scope: ScopeFilter, numericPattern: string): Promise<{ rows: ChangeRow[]; eventCount: number }> {
  const property = metric.property ?? '';
  const result = await db.raw<{ rows: (ChangeRow & { id: string })[] }>(
    `SELECT id, occurred_at, ${VALUE_SQL} AS value, period_close_id IS NOT NULL AS claimed
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
  // A change the carried (claimed) level counted cannot be reversed afterwards (store/reversals.ts refuses it once
  // claimed); an unclaimed one is read afresh below, so its reversal takes it out of every period still to close.
  const carry = await carriedLevel(db, metric, period);
  const before = await changesBeforeNotCarried(db, metric, period, numericPattern, carry);
  // The claimed part first, then the unclaimed changes: out of time order, so only the whole opening level is checked.
  const claimedOpening = levelAfter(aggregation, carry?.claimed ?? { level: '0', setAt: null }, changesOf(aggregation, before.filter((row) => row.claimed)), { partial: true });
  const opening = levelAfter(aggregation, claimedOpening, changesOf(aggregation, before.filter((row) => !row.claimed)), { partial: true });
  if (new Dec(opening.level).lt(0)) throw new SeatProrationError(`the level at ${period.start.toISOString()} is below 0 (${opening.level})`);
  const { rows, eventCount } = await changesInScope(db, metric, scopeFilter, numericPattern);
  const inPeriod = rows.filter((row) => new Date(row.occurred_at).getTime() < period.end.getTime());
  const changes = changesOf(aggregation, inPeriod);
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
    // The claimed part is what the next period carries: the changes left unclaimed here (late ones, and any stored
    // while this close ran) it reads afresh, so none is lost or counted twice.
    closingLevel: { ...levelAfter(aggregation, opening, changes), claimed: levelAfter(aggregation, claimedOpening, changesOf(aggregation, inPeriod.filter((row) => row.claimed)), { partial: true }) },
  };
}
