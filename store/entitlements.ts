/**
 * The reads behind entitlements (domain/entitlements.ts): which features a customer's current plans declare, the
 * period usage of their metered ones from the running totals (store/rollups.ts, the numbers the usage preview
 * rates), and the hard limits ingestion enforces in the transaction that stores the events.
 */
import type { Knex } from 'knex';
import { decideEntitlement, Entitlement, eventsOverLimit, FeatureDefinition, LIMITABLE_AGGREGATIONS, ownLimitWindows, planFeatures, type SubscriptionTypesStretch } from '../domain/entitlements';
import { Dec, toDecimal } from '../domain/money';
import { addIntervals, isValidInterval, parseInterval } from '../domain/periods';
import { usageCharges } from '../domain/plan-terms';
import type { Charge } from '../domain/rating';
import { findMetricsByCode, MetricRow } from './catalog';
import { queryPrepared } from './prepared-statements';
import { cachedMetricsByCode } from './read-caches';
import { isProratedAggregation } from './seat-usage';
import { ensureRollupsSeeded, insertEventsFoldingRollups, lockRollupsExclusive, lockRollupsShared, ROLLUP_KEY_DIGEST, RollupWindow, rollupUsage } from './rollups';
import { insertReversalEvents, insertReversalEventsIn, openOriginalsOf, type NewReversalEvent } from './reversals';
import { aggregateMetric, numericTextFor, pricedStretchesOf, usageEndSql, usageStopAt, type InsertedUsageEvent, type NewUsageEvent, type SubscriptionPricedStretch, type UsageStop } from './usage';
import { billedPastShownEnd, OPEN_WHILE_PAUSED } from './usage-preview';

type Db = Knex | Knex.Transaction;

/**
 * Where a subscription's plan holds its hard limits: for every event the subscription would bill, judged by the
 * event's time as blocks and caps are (store/usage.ts `usageStopAt`). Decided here for every status, from the columns
 * the workflow's status mirror writes (store/subscriptions.ts); `s` is the subscriptions row.
 *
 * - scheduled: yes, from `start_at` (ingestion refuses usage stamped before it). The workflow writes the status and the
 *   first period some time after the start (minutes behind a backlog), while the first period bills every event
 *   stamped from the start: the window is `firstLimitWindowOf`'s until then. Before, 5 calls on a limit of 3 billed 5.00.
 * - trialing, active, past_due: yes, in service.
 * - retention_offered: yes. Asked to cancel, an offer waits; the period goes on and its invoice bills its usage.
 * - pending_cancellation: yes. In service until the period's end; the closing invoice bills the period's usage, also
 *   the late events of before the end sent in the grace window.
 * - paused: yes. Under usageWhilePaused 'bill' the period's invoice bills the usage sent meanwhile; under 'reject'
 *   (usage_blocked) the events stamped before the pause are still billed, and those in it are refused as blocked
 *   before any limit counts them.
 * - suspended: yes, as a rejecting pause: the period bills the events stamped before the block.
 * - needs_attention: shown over the status the subscription stands in, whose columns the row keeps (usage_blocked,
 *   canceled_at, usage_ends_at: store/subscriptions.ts `standingKeptWhileNeedsAttention`); judged as that status.
 * - canceled (canceled_at set, also under needs_attention): no. Its closing invoice has closed its last usage; an
 *   event of before the end sent later is late usage, which no limit judges (as for any closed period).
 * A cancellation now is written as a usage end before the status waits out the grace window: the closing invoice
 * bills the late events of before the end, so the limit holds for them too.
 * Before, only active, trialing and past_due held limits: a subscription canceled at the period's end billed its calls
 * past the limit, as did a pause that bills usage and a suspension's late events.
 */
const HOLDS_LIMITS_SQL = `s.status <> 'canceled' AND s.canceled_at IS NULL`;

/**
 * Where a subscription's plan grants its features at `now` (a placeholder or parameter of the statement): while the
 * service goes on, that is while it holds limits (`HOLDS_LIMITS_SQL`), has started, accepts usage (not blocked: a
 * suspension or a rejecting pause, also under needs_attention) and has not reached its usage end (store/usage.ts
 * `usageEndSql`: a pending cancellation's period end, a cancellation now's instant). Before, only active, trialing and
 * past_due granted: a customer who asked to cancel at the period's end lost every feature at once while still billed
 * for the usage, and a cancellation now kept granting through its grace window.
 */
const grantsFeaturesSql = (now: string): string =>
  `${HOLDS_LIMITS_SQL} AND s.start_at <= ${now} AND NOT s.usage_blocked AND coalesce(${usageEndSql('s')} > ${now}, true)`;

export interface EntitledSubscription {
  readonly subscriptionId: string;
  readonly customerId: string;
  readonly currency: string;
  /** The stored period, or before the workflow stores the first one, where it will be (`limitPeriodOf`). */
  readonly periodStart: Date | null;
  readonly periodEnd: Date | null;
  /** The plan's billing interval (ISO 8601): how long the period after the stored one lasts. */
  readonly billingInterval: string;
  /** Paused: no period ends until the resume, which moves the end (`limitWindowsOf`). */
  readonly paused: boolean;
  /** A capped stretch (spending cap, store/usage.ts `usage_capped_stretches`) holds `now`: see `refusedByCap`. */
  readonly cappedNow: boolean;
  readonly features: readonly FeatureDefinition[];
  /** The metrics the plan prices (its charges but flat ones): the usage a wallet feature's credit pays. */
  readonly pricedMetricCodes: readonly string[];
}

/** Customers' subscriptions whose plans grant their features at `now` (`grantsFeaturesSql`), newest start first. */
export async function entitledSubscriptions(db: Db, customerIds: readonly string[], now: Date): Promise<EntitledSubscription[]> {
  if (customerIds.length === 0) return [];
  const rows: ({ id: string; customer_id: string; status: string; currency: string; billing_interval: string; settings: unknown; charges: unknown; capped_now: boolean } & PeriodColumns)[] =
    await db('subscriptions as s')
      .join('plans as p', 'p.id', 's.plan_id')
      .whereIn('s.customer_id', [...new Set(customerIds)])
      .whereRaw(grantsFeaturesSql('?::timestamptz'), [now, now])
      .orderBy('s.start_at', 'desc')
      .select('s.id', 's.customer_id', 's.status', 'p.currency', ...PERIOD_COLUMNS, 'p.settings', 'p.charges', db.raw('s.usage_capped_stretches @> ?::timestamptz AS capped_now', [now]));
  return rows.map((row) => {
    const period = limitPeriodOf(row);
    return {
      subscriptionId: row.id,
      customerId: row.customer_id,
      currency: row.currency,
      periodStart: period?.start ?? null,
      periodEnd: period?.end ?? null,
      billingInterval: row.billing_interval,
      paused: billedPastShownEnd(row.status).pausedPastEnd,
      cappedNow: row.capped_now,
      features: planFeatures(row.settings),
      pricedMetricCodes: [...new Set(usageCharges((row.charges ?? []) as Charge[]).map((charge) => charge.metricCode))],
    };
  });
}

/** A hard limit on a metric in a customer's current period. */
export interface HardLimit {
  /** The subscription whose plan declares it. */
  readonly subscriptionId: string;
  readonly window: RollupWindow;
  /**
   * The parts of `window` whose events the limit counts and judges: the whole window, unless `limitsOfOwnUsage`
   * cut out where another subscription of the customer prices the metric's event type.
   */
  readonly pieces: readonly RollupWindow[];
  readonly metric: MetricRow;
  readonly limit: string;
}

/**
 * The hard limits of these customers' current periods (metered features with a limit and hard enforcement, on a
 * count or sum metric). Customers whose plans declare none are absent: their ingestion pays nothing for this.
 */
export async function hardLimitsOf(db: Db, customerIds: readonly string[]): Promise<Map<string, HardLimit[]>> {
  const limits = new Map<string, HardLimit[]>();
  if (customerIds.length === 0) return limits;
  // The stored period is judged by the plan in force in it: a change scheduled for its end switched the row's plan
  // at the boundary, and the period's late events, sent in its grace window, met the new plan's limits (or none).
  // The next period's window (limitWindowsOf) is the current plan's.
  const rows: ({ id: string; customer_id: string; status: string; settings: unknown; stored_settings: unknown } & PeriodColumns)[] = await db(
    'subscriptions as s',
  )
    .join('plans as p', 'p.id', 's.plan_id')
    // The plan the first change at or after the stored end left (usually none: one index probe per subscription).
    .joinRaw(
      `LEFT JOIN LATERAL (SELECT old.settings FROM plan_changes pc JOIN plans old ON old.id = pc.old_plan_id
                          WHERE pc.subscription_id = s.id AND pc.change_at >= s.current_period_end
                          ORDER BY pc.change_at LIMIT 1) switched ON true`,
    )
    .whereIn('s.customer_id', [...new Set(customerIds)])
    .whereRaw(HOLDS_LIMITS_SQL)
    .whereRaw("((p.settings -> 'features') IS NOT NULL OR (switched.settings -> 'features') IS NOT NULL)")
    .select('s.id', 's.customer_id', 's.status', ...PERIOD_COLUMNS, 'p.settings', db.raw('coalesce(switched.settings, p.settings) AS stored_settings'));
  const hardLimitsIn = (settings: unknown) =>
    planFeatures(settings).flatMap((feature) => (feature.kind === 'metered' && feature.limit !== null && (feature.enforcement ?? 'hard') === 'hard' ? [{ metricCode: feature.metricCode, limit: feature.limit }] : []));
  const declared = rows.flatMap((row) => {
    const period = limitPeriodOf(row);
    if (!period) return [];
    const [stored, next] = limitWindowsOf(row.customer_id, period.start, period.end, row.billing_interval, billedPastShownEnd(row.status).pausedPastEnd);
    return [
      ...hardLimitsIn(row.stored_settings).map((feature) => ({ ...feature, subscriptionId: row.id, window: stored })),
      ...(next ? hardLimitsIn(row.settings).map((feature) => ({ ...feature, subscriptionId: row.id, window: next })) : []),
    ];
  });
  if (declared.length === 0) return limits;
  const metrics = new Map((await findMetricsByCode(db, [...new Set(declared.map((entry) => entry.metricCode))])).map((metric) => [metric.code, metric]));
  for (const { subscriptionId, window, metricCode, limit } of declared) {
    const metric = metrics.get(metricCode);
    if (!metric || !LIMITABLE_AGGREGATIONS.has(metric.aggregation)) continue;
    limits.set(window.customerId, [...(limits.get(window.customerId) ?? []), { subscriptionId, window, pieces: [window], metric, limit }]);
  }
  return limits;
}

/**
 * The limits narrowed to their own subscription's usage (domain/entitlements.ts `ownLimitWindows`): for a customer
 * with several subscriptions, a limit counts and refuses only the events of its metric's type that no other
 * subscription prices at their time, as a block or a cap refuses only the usage of the subscription it stops. Before,
 * one subscription's limit refused the events another subscription prices (its plan would have billed them), and
 * counted usage of the plan another subscription moved away from. `priced`: `pricedStretchesOf`, which knows only
 * customers with several plans; the others keep their limits whole. A limit left without a piece is dropped.
 */
export function limitsOfOwnUsage(limits: ReadonlyMap<string, readonly HardLimit[]>, priced: ReadonlyMap<string, readonly SubscriptionTypesStretch[]>): Map<string, HardLimit[]> {
  const narrowed = new Map<string, HardLimit[]>();
  for (const [customerId, customerLimits] of limits) {
    const stretches = priced.get(customerId) ?? [];
    const kept = customerLimits.flatMap((limit) => {
      const pieces = ownLimitWindows(limit.window, limit.subscriptionId, limit.metric.event_type, stretches);
      return pieces.length ? [{ ...limit, pieces }] : [];
    });
    if (kept.length) narrowed.set(customerId, kept);
  }
  return narrowed;
}

const inWindow = (at: Date, window: RollupWindow): boolean => at >= window.from && at < window.to;

/** The limit window holding `at` (the stored period's, or the next one's), or the stored period's when neither does. */
function currentLimitWindow(subscription: EntitledSubscription, at: Date): RollupWindow | undefined {
  const { customerId, periodStart, periodEnd, billingInterval, paused } = subscription;
  if (!periodStart || !periodEnd) return undefined;
  const windows = limitWindowsOf(customerId, periodStart, periodEnd, billingInterval, paused);
  return windows.find((window) => inWindow(at, window)) ?? windows[0];
}

/**
 * The periods a limit is counted in: the stored current period and the one after it. The workflow stores the next
 * period as current only when it invoices it, after the closed period's usage grace window (PT1H by default):
 * until then an event stamped in the new period lay in no limit's window and passed every limit unchecked. The
 * next period is taken as [current end, current end + the plan's interval): where month-end clamping makes the true
 * period longer (Feb 28 + P1M is Mar 28, the true end Mar 31), the window still holds far more than a grace window.
 *
 * Paused, no period ends: the resume moves the stored end later by the paused time, and the period's invoice bills the
 * usage sent meanwhile (usageWhilePaused 'bill'), also past the end the row still shows (store/usage-preview.ts
 * `billedPastShownEnd`). So the stored period is one window open to the end of time until the resume stores its end;
 * the period's close forgets it (store/rollups.ts `forgetRollupsOverlapping`). Before, calls sent while paused past
 * the shown end counted in the next period's window: 3 calls before it and 2 after, on a limit of 3, all billed 5.00.
 */
function limitWindowsOf(customerId: string, start: Date, end: Date, interval: string, paused: boolean): RollupWindow[] {
  if (paused) return [{ customerId, from: start, to: OPEN_WHILE_PAUSED }];
  const current = { customerId, from: start, to: end };
  if (!isValidInterval(interval)) return [current];
  return [current, { customerId, from: end, to: addIntervals(end, parseInterval(interval), 1) }];
}

/** The columns `limitPeriodOf` reads (subscriptions `s`, plans `p`). */
const PERIOD_COLUMNS = ['s.current_period_start', 's.current_period_end', 's.start_at', 's.trial_end', 'p.trial_period', 'p.billing_interval'] as const;
interface PeriodColumns {
  current_period_start: Date | null;
  current_period_end: Date | null;
  start_at: Date;
  trial_end: Date | null;
  trial_period: string | null;
  billing_interval: string;
}

/**
 * The period a limit is counted in (with the next one: limitWindowsOf): the stored one, or, before the workflow stores
 * the first (a trial, or a start not yet written: minutes behind a backlog), the one the workflow will store, placed as
 * workflows/subscription/state.ts `startRun` places it: the billing anchor is the trial's end, or the start.
 * - No trial: [start, start + interval), the first period exactly, whose invoice bills every event stamped from the
 *   start.
 * - A trial: its span, [start, trial end). The trial's usage is not billed, but the plan's limit is what the trial
 *   grants too, so it holds through the trial; the first paid period then starts a fresh count at the trial's end
 *   (the next window). The trial's end is the row's once the workflow recorded it (`trialing`), else the start plus
 *   the plan's trial, as the workflow computes it.
 * Before, no limit held until the first period was stored: 5 calls on a limit of 3 billed 5.00, and a trial's calls
 * were never held. Undefined when neither a period nor a valid interval places one.
 */
function limitPeriodOf(row: PeriodColumns): { start: Date; end: Date } | undefined {
  if (row.current_period_start && row.current_period_end) return { start: row.current_period_start, end: row.current_period_end };
  const start = row.start_at;
  const trialEnd = row.trial_end ?? (row.trial_period && isValidInterval(row.trial_period) ? addIntervals(start, parseInterval(row.trial_period), 1) : null);
  if (trialEnd && trialEnd > start) return { start, end: trialEnd };
  return isValidInterval(row.billing_interval) ? { start, end: addIntervals(start, parseInterval(row.billing_interval), 1) } : undefined;
}

// Same patterns as store/usage.ts: a value that does not match counts as absent.
const UNSIGNED_VALUE = /^0*[0-9]{1,12}(\.[0-9]{1,12})?$/;
const SIGNED_VALUE = /^-?0*[0-9]{1,12}(\.[0-9]{1,12})?$/;

function limitKey(limit: HardLimit): string {
  return `${limit.subscriptionId}|${limit.window.customerId}|${limit.window.from.toISOString()}|${limit.window.to.toISOString()}|${limit.metric.id}`;
}

/** What one event adds to a limited metric's usage, or undefined when the metric does not read it. */
function contribution(event: NewUsageEvent, limit: HardLimit): Dec | undefined {
  const { metric, window } = limit;
  if (event.customerId !== window.customerId || event.eventType !== metric.event_type) return undefined;
  if (!limit.pieces.some((piece) => inWindow(event.occurredAt, piece))) return undefined;
  if (!Object.entries(metric.filters ?? {}).every(([key, expected]) => event.properties[key] === expected)) return undefined;
  if (metric.aggregation === 'count' && metric.property === null) return new Dec(1);
  const raw = metric.property === null ? undefined : event.properties[metric.property];
  const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw : undefined;
  const readable = text !== undefined && (metric.allow_negative ? SIGNED_VALUE : UNSIGNED_VALUE).test(text);
  if (metric.aggregation === 'count') return readable ? new Dec(1) : undefined;
  return readable ? toDecimal(text.replace(/^(-?)0+(?=\d)/, '$1')) : undefined;
}

export interface LimitedInsert {
  readonly inserted: InsertedUsageEvent[];
  /** Indexes (into the events given) refused because they would pass a hard limit. */
  readonly overLimit: ReadonlySet<number>;
}

/**
 * Stores the events that fit under their customers' hard limits and refuses the rest, in one transaction that
 * holds the limited totals' rows: two requests racing for the last units cannot both get them. Duplicates (an
 * event id already stored, or repeated in the batch after a copy that fits) count once, as ingestion stores them
 * once; a copy repeated after a refused one is judged on its own (eventsOverLimit), or it would be stored unchecked.
 */
export async function insertUsageEventsWithinLimits(db: Knex, events: readonly NewUsageEvent[], limits: ReadonlyMap<string, readonly HardLimit[]>): Promise<LimitedInsert> {
  // Only the windows this batch's events fall in: the next period's window costs nothing until it is used.
  const all = [...limits.values()].flat().filter((limit) => events.some((event) => event.customerId === limit.window.customerId && limit.pieces.some((piece) => inWindow(event.occurredAt, piece))));
  const rowsOf = (chosen: readonly NewUsageEvent[]) => ({
    customerIds: chosen.map((event) => event.customerId),
    eventIds: chosen.map((event) => event.eventId),
    eventTypes: chosen.map((event) => event.eventType),
    occurredAts: chosen.map((event) => event.occurredAt.toISOString()),
    properties: chosen.map((event) => JSON.stringify(event.properties)),
  });
  // A reversal or a period close can forget a window between its seeding and the shared lock: then its total row is
  // gone and the usage would read 0, letting a whole limit through on top of what was used. Seeded again and retried
  // (nothing was written); forgetting is rare, so a second attempt almost always finds the row.
  for (let attempt = 1; ; attempt += 1) {
    const outcome = await insertSeededWithinLimits(db, events, limits, all, rowsOf);
    if (outcome) return outcome;
    if (attempt >= 10) throw new Error('usage limits: the running totals were forgotten at every attempt; retry the request');
  }
}

/** One attempt of insertUsageEventsWithinLimits; undefined (nothing written) when a limit's total row is missing. */
async function insertSeededWithinLimits(
  db: Knex,
  events: readonly NewUsageEvent[],
  limits: ReadonlyMap<string, readonly HardLimit[]>,
  all: readonly HardLimit[],
  rowsOf: (chosen: readonly NewUsageEvent[]) => Parameters<typeof insertEventsFoldingRollups>[1],
): Promise<LimitedInsert | undefined> {
  // Seeding takes the customer's exclusive rollup lock, so it happens before the transaction takes the shared one.
  for (const limit of all) for (const piece of limit.pieces) await ensureRollupsSeeded(db, piece, [limit.metric.id]);
  return db.transaction(async (trx) => {
    await lockRollupsShared(trx, events.map((event) => event.customerId));
    const usage = await lockedUsage(trx, all);
    if (!usage) return undefined;
    const limitedCustomers = new Set(all.map((limit) => limit.window.customerId));
    const candidates = events.filter((event) => limitedCustomers.has(event.customerId));
    const stored = await storedEventIds(trx, candidates);
    const keys = events.map((event) => `${event.customerId}|${event.eventId}`);
    const contributions = events.map((event, index) => {
      if (!limitedCustomers.has(event.customerId) || stored.has(keys[index])) return undefined;
      const adds = new Map<string, Dec>();
      for (const limit of limits.get(event.customerId) ?? []) {
        const amount = contribution(event, limit);
        if (amount !== undefined) adds.set(limitKey(limit), amount);
      }
      return adds.size > 0 ? adds : undefined;
    });
    const overLimit = eventsOverLimit(usage, tightestLimits(all), contributions, keys);
    const accepted = events.filter((_, index) => !overLimit.has(index));
    const inserted = accepted.length > 0 ? await insertEventsFoldingRollups(trx, rowsOf(accepted)) : [];
    return { inserted, overLimit };
  });
}

/**
 * Stores reversals (store/reversals.ts), refusing each that would take a hard limit's usage past it. A reversal takes
 * its original's value back: reversing a negative correction of a sum raises the usage like an increase, and stored
 * unjudged it billed past the limit (+100, -50, +50 and the -50 reversed: 150 tokens billed on a limit of 100, where
 * +50 in its place was refused). Judged in the reversals' own transaction under the customers' exclusive rollup lock
 * (which forgetting the reversed windows takes anyway): no event of theirs is judged, stored or claimed by a close
 * until it commits. The totals are being forgotten, so the limit's usage is read from the raw events, as a seed would
 * count them. Only a reversal of an open-period original whose value is negative can raise a limited usage.
 */
export async function insertReversalEventsWithinLimits(
  db: Knex,
  reversals: readonly NewReversalEvent[],
  limits: ReadonlyMap<string, readonly HardLimit[]>,
): Promise<{ inserted: { customer_id: string; event_id: string }[]; overLimit: ReadonlySet<number> }> {
  const sums = (customerId: string) => (limits.get(customerId) ?? []).filter((limit) => limit.metric.aggregation === 'sum');
  if (!reversals.some((reversal) => sums(reversal.customerId).length > 0)) return { inserted: await insertReversalEvents(db, reversals), overLimit: new Set() };
  return db.transaction(async (trx) => {
    await lockRollupsExclusive(trx, reversals.map((reversal) => reversal.customerId));
    const originals = await openOriginalsOf(trx, reversals);
    const contributions = reversals.map((reversal) => {
      const original = originals.get(`${reversal.customerId}|${reversal.reversesEventId}`);
      if (!original) return undefined;
      const adds = new Map<string, Dec>();
      for (const limit of sums(reversal.customerId)) {
        const amount = contribution(original, limit);
        if (amount !== undefined && amount.isNegative()) adds.set(limitKey(limit), amount.negated());
      }
      return adds.size > 0 ? adds : undefined;
    });
    const judged = [...limits.values()].flat().filter((limit) => contributions.some((adds) => adds?.has(limitKey(limit))));
    const usage = new Map<string, string>();
    for (const limit of judged) usage.set(limitKey(limit), await rawLimitedSum(trx, limit));
    // An identical copy later in the batch is stored once (a duplicate): counted once, never refused on its own.
    const keys = reversals.map((reversal) => `${reversal.customerId}|${reversal.eventId}`);
    const overLimit = judged.length > 0 ? eventsOverLimit(usage, tightestLimits(judged), contributions, keys) : new Set<number>();
    const inserted = await insertReversalEventsIn(trx, reversals.filter((_, index) => !overLimit.has(index)));
    return { inserted, overLimit };
  });
}

/** A limited sum's raw total over the limit's pieces, from the open events a seed would count (store/rollups.ts). */
async function rawLimitedSum(trx: Knex.Transaction, limit: HardLimit): Promise<string> {
  const { metric } = limit;
  let total = toDecimal('0');
  for (const piece of limit.pieces) {
    const result = await trx.raw<{ rows: { total: string }[] }>(
      `SELECT coalesce(sum(CASE WHEN properties ->> ? ~ ? THEN (properties ->> ?)::numeric END), 0)::text AS total
       FROM usage_events
       WHERE customer_id = ? AND event_type = ? AND occurred_at >= ? AND occurred_at < ? AND properties @> ?::jsonb
         AND period_close_id IS NULL AND reversed_by_event_id IS NULL AND reverses_event_id IS NULL`,
      [metric.property ?? '', numericTextFor(metric), metric.property ?? '', piece.customerId, metric.event_type, piece.from, piece.to, JSON.stringify(metric.filters ?? {})],
    );
    total = total.plus(toDecimal(result.rows[0].total));
  }
  return total.toFixed();
}

/**
 * The limit of each (subscription, window, metric): the tightest when several features limit the same metric in
 * the same window. Two subscriptions' limits have a key each: where both count an event, it must fit both. A map of
 * the declarations kept the last one, so a tighter limit declared before a looser one was never enforced while its
 * own answer said no.
 */
function tightestLimits(limits: readonly HardLimit[]): Map<string, string> {
  const tightest = new Map<string, string>();
  for (const limit of limits) {
    const key = limitKey(limit);
    const seen = tightest.get(key);
    if (seen === undefined || toDecimal(limit.limit).lt(toDecimal(seen))) tightest.set(key, limit.limit);
  }
  return tightest;
}

/**
 * The running totals of the limited metrics (raw sums: negatives count until the quantity's floor at 0), row-locked;
 * undefined when one is missing (its window was forgotten since it was seeded: seeding writes the row, even at 0).
 */
async function lockedUsage(trx: Knex.Transaction, limits: readonly HardLimit[]): Promise<Map<string, string> | undefined> {
  const usage = new Map<string, string>();
  for (const limit of limits) {
    // A limit cut into pieces counts the sum of its pieces' totals (count and sum add up across windows).
    let total = toDecimal('0');
    for (const piece of limit.pieces) {
      const value = await lockedPieceUsage(trx, piece, limit.metric);
      if (value === undefined) return undefined;
      total = total.plus(toDecimal(value));
    }
    usage.set(limitKey(limit), total.toFixed());
  }
  return usage;
}

/** One window's raw total of a limited metric, row-locked; undefined when the window was forgotten since seeding. */
async function lockedPieceUsage(trx: Knex.Transaction, piece: RollupWindow, metric: MetricRow): Promise<string | undefined> {
  const read = (): Promise<WindowTotals | undefined> => windowTotals(trx, piece, metric).forUpdate('r');
  let row = await read();
  if (!row) {
    // Still seeded (a window seeded before seeding wrote the zero row): zero so far, and the row to lock is written
    // now. No longer seeded: forgotten since, the caller seeds again. The shared lock keeps either answer true.
    const registered: { window_id: string } | undefined = await trx('usage_rollup_window_metrics as wm')
      .join('usage_rollup_windows as w', 'w.id', 'wm.window_id')
      .where({ 'w.customer_id': piece.customerId, 'w.period_start': piece.from, 'w.period_end': piece.to, 'wm.metric_id': metric.id })
      .first('wm.window_id');
    if (!registered) return undefined;
    await trx('usage_rollups').insert({ window_id: registered.window_id, metric_id: metric.id, dimension_key: '' }).onConflict(['window_id', 'metric_id', ROLLUP_KEY_DIGEST]).ignore();
    row = await read();
    if (!row) return undefined;
  }
  return limitedTotalOf(row, metric);
}

interface WindowTotals {
  event_count: string;
  value_count: string;
  value_sum: string;
}

/** The window's totals row of a metric (the whole metric, no dimension), as a query the caller may lock. */
function windowTotals(db: Db, piece: RollupWindow, metric: MetricRow): Knex.QueryBuilder<WindowTotals, WindowTotals | undefined> {
  return db('usage_rollups as r')
    .join('usage_rollup_windows as w', 'w.id', 'r.window_id')
    .where({ 'w.customer_id': piece.customerId, 'w.period_start': piece.from, 'w.period_end': piece.to })
    .andWhere({ 'r.metric_id': metric.id, 'r.dimension_key': '' })
    .first('r.event_count', 'r.value_count', 'r.value_sum');
}

/** What a limit counts of a window's totals row: the sum, the events, or the events with the property set. */
function limitedTotalOf(row: WindowTotals, metric: MetricRow): string {
  return String(metric.aggregation === 'sum' ? row.value_sum : metric.property === null ? row.event_count : row.value_count);
}

async function storedEventIds(trx: Knex.Transaction, events: readonly NewUsageEvent[]): Promise<Set<string>> {
  if (events.length === 0) return new Set();
  const result = await trx.raw<{ rows: { customer_id: string; event_id: string }[] }>(
    `SELECT u.customer_id, u.event_id FROM usage_events u
     JOIN unnest(?::uuid[], ?::text[]) AS e(customer_id, event_id) ON u.customer_id = e.customer_id AND u.event_id = e.event_id`,
    [events.map((event) => event.customerId), events.map((event) => event.eventId)],
  );
  return new Set(result.rows.map((row) => `${row.customer_id}|${row.event_id}`));
}

/** A metric's open usage in a window, from the running totals: the same quantities the usage preview rates. */
export async function openMetricUsage(db: Knex, window: RollupWindow, metrics: readonly MetricRow[]): Promise<Map<string, string>> {
  // Seat-like metrics are prorated from their raw changes (store/seat-usage.ts), never from the totals.
  const prorated = metrics.filter((metric) => isProratedAggregation(metric.aggregation));
  const totals = await rollupUsage(db, window, metrics.filter((metric) => !isProratedAggregation(metric.aggregation)));
  const scope = { kind: 'unclaimed' as const, customerId: window.customerId, from: window.from, to: window.to };
  const raw = await Promise.all(prorated.map(async (metric) => [metric.code, (await aggregateMetric(db, metric, scope, false)).quantity] as const));
  return new Map([...[...totals].map(([code, usage]) => [code, usage.quantity] as const), ...raw]);
}

/**
 * Balance lookup for wallet-backed features (store/wallets.ts availableBalanceFor): the customer's available balance
 * in a currency that can pay usage of these metrics (the ones the feature's plan prices), or null without a wallet.
 */
export type BalanceOf = (customerId: string, currency: string, metricCodes: readonly string[]) => Promise<string | null>;

interface OneFeatureRow {
  /** The customer has another subscription: its pricing may cut the limit's window (limitsOfOwnUsage). */
  siblings: boolean;
  status: string;
  /** A capped stretch holds now: the general path judges the cap by the metric's type (`refusedByCap`). */
  capped: boolean;
  period_start: Date | null;
  period_end: Date | null;
  feature: FeatureDefinition;
  aggregation: string | null;
  property: string | null;
  seeded: boolean;
  event_count: string;
  value_count: string;
  sum_quantity: string;
}

/** The statement of oneFeatureFast (prepared: see store/prepared-statements.ts). */
const ONE_FEATURE_SQL = `WITH chosen AS (
       SELECT s.id, s.status, s.current_period_start AS period_start, s.current_period_end AS period_end, f AS feature,
              s.usage_capped_stretches @> $2::timestamptz AS capped
       FROM subscriptions s JOIN plans p ON p.id = s.plan_id
       CROSS JOIN LATERAL jsonb_array_elements(coalesce(p.settings -> 'features', '[]'::jsonb)) AS f
       WHERE s.customer_id = $1 AND ${grantsFeaturesSql('$2::timestamptz')} AND f ->> 'code' = $3
       ORDER BY s.start_at DESC LIMIT 1
     )
     SELECT EXISTS (SELECT 1 FROM subscriptions o WHERE o.customer_id = $4 AND o.id <> c.id) AS siblings, c.status, c.capped,
            c.period_start, c.period_end, c.feature, m.aggregation, m.property, wm.metric_id IS NOT NULL AS seeded,
            coalesce(r.event_count, 0)::text AS event_count, coalesce(r.value_count, 0)::text AS value_count,
            greatest(coalesce(r.value_sum, 0), 0)::text AS sum_quantity
     FROM chosen c
     LEFT JOIN billable_metrics m ON m.code = c.feature ->> 'metricCode'
     LEFT JOIN usage_rollup_windows w ON w.customer_id = $4 AND w.period_start = c.period_start AND w.period_end = c.period_end
     LEFT JOIN usage_rollup_window_metrics wm ON wm.window_id = w.id AND wm.metric_id = m.id
     LEFT JOIN usage_rollups r ON r.window_id = w.id AND r.metric_id = m.id AND r.dimension_key = ''`;

/**
 * The hot path of GET .../entitlements/:feature, in one statement: the newest subscription granting its features
 * (`grantsFeaturesSql`) that declares the feature, its metric and the window's totals. Undefined when the general
 * path must answer (a wallet feature, a window not seeded yet, an aggregation other than count or sum, a customer
 * with several subscriptions, a paused subscription): that one seeds, asks the wallet, counts only the subscription's
 * own usage, or counts past the stored end.
 */
async function oneFeatureFast(db: Knex, customerId: string, code: string, now: Date): Promise<Entitlement | 'absent' | undefined> {
  const [row] = await queryPrepared<OneFeatureRow>(db, 'entitlement-check-one-feature', ONE_FEATURE_SQL, [customerId, now, code, customerId]);
  if (!row) return 'absent';
  const { feature } = row;
  if (feature.kind === 'boolean') return decideEntitlement(feature, { periodEnd: row.period_end, balance: null });
  if (feature.kind !== 'metered' || !row.period_start || !row.period_end || !row.seeded || row.siblings || row.capped) return undefined;
  // Paused, the limit's window runs past the stored end (limitWindowsOf): the general path counts it.
  if (billedPastShownEnd(row.status).pausedPastEnd) return undefined;
  // The stored period has ended (the grace window before the next one is stored): the general path counts the next.
  if (row.period_end <= now) return undefined;
  // Count and sum read straight from the totals; other aggregations take the general path (quantityOf in rollups.ts).
  if (row.aggregation !== 'count' && row.aggregation !== 'sum') return undefined;
  const usage = row.aggregation === 'sum' ? row.sum_quantity : row.property === null ? row.event_count : row.value_count;
  return decideEntitlement(feature, { usage, periodEnd: row.period_end, balance: null });
}

/**
 * Every feature the customer's current plans declare (the newest subscription's declaration wins a shared code),
 * or only `only`, answered from the period totals and, for wallet-backed features, the wallet balance. One
 * feature's answer is usually one statement (oneFeatureFast).
 */
export async function customerEntitlements(db: Knex, customerId: string, balanceOf: BalanceOf, only?: string, now: Date = new Date()): Promise<Entitlement[]> {
  if (only !== undefined) {
    const fast = await oneFeatureFast(db, customerId, only, now);
    if (fast === 'absent') return [];
    if (fast) return [fast];
  }
  const subscriptions = await entitledSubscriptions(db, [customerId], now);
  const chosen = new Map<string, { feature: FeatureDefinition; subscription: EntitledSubscription }>();
  for (const subscription of subscriptions) {
    for (const feature of subscription.features) {
      if ((only === undefined || feature.code === only) && !chosen.has(feature.code)) chosen.set(feature.code, { feature, subscription });
    }
  }
  const meteredCodes = [...chosen.values()].flatMap(({ feature }) => (feature.kind === 'metered' ? [feature.metricCode] : []));
  const metrics = new Map((await cachedMetricsByCode(db, meteredCodes)).map((metric) => [metric.code, metric]));
  // As at ingestion: known for a customer with several subscriptions (an ended one counts: it priced its types until
  // its end) or a plan change; empty for the others.
  const priced = meteredCodes.length ? ((await pricedStretchesOf(db, [customerId])).get(customerId) ?? []) : [];
  return Promise.all(
    [...chosen.values()].map(async ({ feature, subscription }) => {
      const { currency } = subscription;
      // The period ingestion counts an event stamped now in (hardLimitsOf): in the grace window after the stored
      // period's end, the next one, so that the answer and ingestion agree there too.
      const window = currentLimitWindow(subscription, now);
      // Paused, the period's end is known only at the resume: no reset instant is promised meanwhile.
      const periodEnd = subscription.paused ? null : (window?.to ?? subscription.periodEnd);
      let usage: string | undefined;
      if (feature.kind === 'metered' && window && metrics.has(feature.metricCode)) {
        const metric = metrics.get(feature.metricCode)!;
        usage = await limitedMetricUsage(db, window, ownLimitWindows(window, subscription.subscriptionId, metric.event_type, priced), metric);
      }
      // Only credit that can pay the plan's metered usage: a grant scoped to a metric it does not price never will.
      const balance = feature.kind === 'wallet' ? await balanceOf(customerId, currency, subscription.pricedMetricCodes) : null;
      const usageRefused = feature.kind === 'metered' && metrics.has(feature.metricCode) && refusedByCap(subscription, metrics.get(feature.metricCode)!.event_type, priced, now);
      return decideEntitlement(feature, { usage, periodEnd, balance, usageRefused });
    }),
  );
}

/**
 * Whether the subscription's spending cap refuses an event of `eventType` stamped now, as ingestion judges it
 * (store/usage.ts `usageStopAt`): a cap stops the types its subscription prices then (or types no subscription
 * prices). Judged per metered feature, not per subscription: a boolean feature is no usage and stays granted. Before,
 * a capped period refused every call usage_cap_reached while the answer said has_access true with room under the limit.
 */
function refusedByCap(subscription: EntitledSubscription, eventType: string, priced: readonly SubscriptionPricedStretch[], now: Date): boolean {
  if (!subscription.cappedNow) return false;
  const cap: UsageStop = { from: now, until: null, subscriptionId: subscription.subscriptionId, refusal: 'usage_cap_reached' };
  return usageStopAt([cap], now, eventType, priced) !== undefined;
}

/**
 * A metered feature's usage as ingestion counts it against the limit: a count or sum over the window's pieces that
 * are the subscription's own (limitsOfOwnUsage), added up raw and floored at 0 as eventsOverLimit floors them. Other
 * aggregations do not add up across windows and carry no hard limit: they read the whole window.
 */
async function limitedMetricUsage(db: Knex, window: RollupWindow, pieces: readonly RollupWindow[], metric: MetricRow): Promise<string | undefined> {
  const whole = pieces.length === 1 && pieces[0].from.getTime() === window.from.getTime() && pieces[0].to.getTime() === window.to.getTime();
  if (whole || !LIMITABLE_AGGREGATIONS.has(metric.aggregation)) return (await openMetricUsage(db, window, [metric])).get(metric.code);
  let total = toDecimal('0');
  for (const piece of pieces) {
    await ensureRollupsSeeded(db, piece, [metric.id]);
    const row = await windowTotals(db, piece, metric);
    // The raw sum, as lockedPieceUsage reads it: a corrections sum may be negative in one piece.
    if (row) total = total.plus(toDecimal(limitedTotalOf(row, metric)));
  }
  return Dec.max(total, 0).toFixed();
}
