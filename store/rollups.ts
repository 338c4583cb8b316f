/**
 * Running totals of usage ("rollups"), so that the usage preview, the entitlement check and the customer usage
 * page answer in constant time whatever the number of events (issue 12; docs/usage-events.md "Rollups").
 *
 * A window is a customer's [period start, period end): the scope the real-time usage endpoint aggregates. Its
 * totals per metric are seeded once from the raw events (the first time something reads them) and from then on
 * kept up to date by the very statement that stores new events, in the same transaction. Per window, metric and
 * dimension key ('' is the metric's total; issue 14 adds per-combination keys) a row holds the event count, the
 * count and sum of numeric values, their maximum, the latest value, and the size of the exact distinct set kept
 * in usage_rollup_distinct_values. Duplicate events are never counted twice: only rows the insert actually
 * stored (RETURNING) feed the totals.
 *
 * Seeding and ingestion serialize per customer on an advisory lock: ingestion takes it shared before its
 * statement (so its snapshot sees every committed window), seeding takes it exclusively (so its scan of raw
 * events sees every event committed before the window existed). No event is missed or counted twice.
 */
import type { Knex } from 'knex';
import type { MetricRow } from './catalog';
import { queryPrepared } from './prepared-statements';
import type { UsageGroup } from '../domain/dimensions';
import type { MetricUsage } from './usage';

type Db = Knex | Knex.Transaction;

/**
 * The column the totals are unique by, in place of dimension_key: its sha256, which the database computes
 * (migration 0650, usage_rollup_key_digest; usage_rollup_distinct_values also digests its value). A btree entry
 * holds at most 2704 bytes, and a metric created after long-valued events of its type seeds keys no ingestion
 * bound checked (54000 on every read before); the digest has one size, the full key stays readable in dimension_key.
 */
export const ROLLUP_KEY_DIGEST = 'dimension_digest';

/** The advisory lock class of rollup windows (the object id is the customer's hash). */
const ROLLUP_LOCK_CLASS = 120_450;

// Same patterns as store/usage.ts (NUMERIC_TEXT and its signed twin): a value that does not match counts as absent.
const UNSIGNED_VALUE = String.raw`^0*[0-9]{1,12}(\.[0-9]{1,12})?$`;
const SIGNED_VALUE = String.raw`^-?0*[0-9]{1,12}(\.[0-9]{1,12})?$`;

/**
 * The CTEs that fold the events of `src` (id, customer_id, event_type, occurred_at, properties) into the totals
 * of every seeded window and metric they fall in. `restrict` narrows the seeded pairs (seeding one window).
 * Two bindings (the value patterns) come first, then those of `restrict`.
 */
function foldIntoRollupsSql(restrict = ''): string {
  return `
  matched AS (
    SELECT wm.window_id, m.id AS metric_id, m.aggregation, k.dimension_key, s.id AS row_id, s.occurred_at,
           s.properties ->> coalesce(m.property, '') AS raw_value,
           CASE WHEN s.properties ->> coalesce(m.property, '') ~ (CASE WHEN m.allow_negative THEN ?::text ELSE ?::text END)
                THEN (s.properties ->> coalesce(m.property, ''))::numeric END AS value
    FROM src s
    JOIN usage_rollup_windows w ON w.customer_id = s.customer_id AND s.occurred_at >= w.period_start AND s.occurred_at < w.period_end
    JOIN usage_rollup_window_metrics wm ON wm.window_id = w.id ${restrict}
    JOIN billable_metrics m ON m.id = wm.metric_id AND m.event_type = s.event_type AND s.properties @> m.filters
    -- Every event counts in the metric's total ('') and, when the metric groups by dimensions, in its combination's.
    CROSS JOIN LATERAL (
      SELECT ''::text AS dimension_key
      UNION ALL
      SELECT ${COMBINATION_KEY} WHERE jsonb_array_length(m.group_by) > 0
    ) k
  ),
  new_distinct AS (
    INSERT INTO usage_rollup_distinct_values (window_id, metric_id, dimension_key, value)
    SELECT DISTINCT window_id, metric_id, dimension_key, raw_value FROM matched
    WHERE aggregation = 'unique_count' AND raw_value IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING window_id, metric_id, dimension_key
  ),
  added_distinct AS (
    SELECT window_id, metric_id, dimension_key, count(*) AS added FROM new_distinct GROUP BY 1, 2, 3
  ),
  -- Only a latest metric sorts its values (the other aggregations never read latest_*).
  grouped AS (
    SELECT window_id, metric_id, dimension_key, count(*) AS event_count, count(value) AS value_count,
           coalesce(sum(value), 0) AS value_sum, max(value) AS value_max,
           (array_agg(occurred_at ORDER BY occurred_at DESC, row_id DESC) FILTER (WHERE value IS NOT NULL AND aggregation = 'latest'))[1] AS latest_at,
           (array_agg(row_id ORDER BY occurred_at DESC, row_id DESC) FILTER (WHERE value IS NOT NULL AND aggregation = 'latest'))[1] AS latest_row_id,
           (array_agg(value ORDER BY occurred_at DESC, row_id DESC) FILTER (WHERE value IS NOT NULL AND aggregation = 'latest'))[1] AS latest_value
    FROM matched GROUP BY 1, 2, 3
  ),
  folded AS (
    INSERT INTO usage_rollups AS r (window_id, metric_id, dimension_key, event_count, value_count, value_sum, value_max,
                                    distinct_count, latest_at, latest_event_row_id, latest_value)
    SELECT g.window_id, g.metric_id, g.dimension_key, g.event_count, g.value_count, g.value_sum, g.value_max,
           coalesce(d.added, 0), g.latest_at, g.latest_row_id, g.latest_value
    FROM grouped g LEFT JOIN added_distinct d USING (window_id, metric_id, dimension_key)
    ORDER BY 1, 2, 3
    ON CONFLICT (window_id, metric_id, ${ROLLUP_KEY_DIGEST}) DO UPDATE SET
      event_count = r.event_count + excluded.event_count,
      value_count = r.value_count + excluded.value_count,
      value_sum = r.value_sum + excluded.value_sum,
      value_max = greatest(r.value_max, excluded.value_max),
      distinct_count = r.distinct_count + excluded.distinct_count,
      latest_at = CASE WHEN ${NEWER} THEN excluded.latest_at ELSE r.latest_at END,
      latest_event_row_id = CASE WHEN ${NEWER} THEN excluded.latest_event_row_id ELSE r.latest_event_row_id END,
      latest_value = CASE WHEN ${NEWER} THEN excluded.latest_value ELSE r.latest_value END,
      updated_at = now()
    RETURNING 1
  )`;
}

/**
 * The dimension key of an event's combination of a grouped metric: the JSON object of the group_by properties the
 * event has (as text, absent or JSON null left out), the same values store/dimension-usage.ts groups raw events by.
 * jsonb prints its keys in one canonical order, so one combination has one key; '' (the total) is never one.
 * Any length: the primary keys hold its digest (ROLLUP_KEY_DIGEST), never the key itself.
 */
const COMBINATION_KEY = `coalesce((SELECT jsonb_object_agg(d, s.properties ->> d) FROM jsonb_array_elements_text(m.group_by) AS d
                                  WHERE s.properties ->> d IS NOT NULL), '{}'::jsonb)::text`;

/** The batch's latest value wins when it is later by (occurred_at, row id): the order `latest` reads raw events in. */
const NEWER = `(excluded.latest_at IS NOT NULL AND (r.latest_at IS NULL OR (excluded.latest_at, excluded.latest_event_row_id) > (r.latest_at, r.latest_event_row_id)))`;

export interface EventRows {
  readonly customerIds: readonly string[];
  readonly eventIds: readonly string[];
  readonly eventTypes: readonly string[];
  readonly occurredAts: readonly string[];
  readonly properties: readonly string[];
}

/** Takes the shared side of each customer's rollup lock, for the rest of the transaction. */
export async function lockRollupsShared(trx: Knex.Transaction, customerIds: readonly string[]): Promise<void> {
  await trx.raw('SELECT pg_advisory_xact_lock_shared(?, hashtext(c)) FROM unnest(?::text[]) AS c ORDER BY c', [
    ROLLUP_LOCK_CLASS,
    [...new Set(customerIds)].sort(),
  ]);
}

/**
 * Takes each customer's rollup lock exclusively, for the rest of the transaction (as seeding and forgetting do): no
 * event of theirs is judged against a hard limit or stored until it commits. Reentrant within the transaction.
 */
export async function lockRollupsExclusive(trx: Knex.Transaction, customerIds: readonly string[]): Promise<void> {
  await trx.raw('SELECT pg_advisory_xact_lock(?, hashtext(c)) FROM unnest(?::text[]) AS c ORDER BY c', [ROLLUP_LOCK_CLASS, [...new Set(customerIds)].sort()]);
}

/**
 * The insert statement of usage events that also folds the stored ones into their rollups. Bindings: the five
 * event arrays, then the two value patterns. The caller holds the shared rollup lock of every customer.
 */
export async function insertEventsFoldingRollups(
  trx: Knex.Transaction,
  rows: EventRows,
): Promise<{ customer_id: string; event_id: string }[]> {
  const result = await trx.raw<{ rows: { customer_id: string; event_id: string }[] }>(
    `WITH src AS (
       INSERT INTO usage_events (customer_id, event_id, event_type, occurred_at, properties, late)
       SELECT e.customer_id, e.event_id, e.event_type, e.occurred_at, e.properties,
              coalesce(e.occurred_at < (SELECT max(c.period_end) FROM usage_period_closures c WHERE c.customer_id = e.customer_id), false)
       FROM unnest(?::uuid[], ?::text[], ?::text[], ?::timestamptz[], ?::jsonb[])
            AS e(customer_id, event_id, event_type, occurred_at, properties)
       ON CONFLICT (customer_id, event_id) DO NOTHING
       RETURNING id, customer_id, event_id, event_type, occurred_at, properties
     ),
     ${foldIntoRollupsSql()}
     SELECT customer_id, event_id FROM src`,
    [[...rows.customerIds], [...rows.eventIds], [...rows.eventTypes], [...rows.occurredAts], [...rows.properties], SIGNED_VALUE, UNSIGNED_VALUE],
  );
  return result.rows;
}

export interface RollupWindow {
  readonly customerId: string;
  readonly from: Date;
  readonly to: Date;
}

/**
 * Forgets the totals of every window holding a reversed event (docs/pricing.md, reversible outcomes): a max or a
 * distinct set cannot be taken back, so the window is seeded again from the raw events, without the reversed one,
 * the next time something reads it. Under the customers' exclusive rollup locks, so no insert folds meanwhile.
 */
export async function forgetRollupsOfReversed(trx: Knex.Transaction, reversed: readonly { customerId: string; occurredAt: Date }[]): Promise<void> {
  if (reversed.length === 0) return;
  await lockRollupsExclusive(trx, reversed.map((r) => r.customerId));
  const windows = trx('usage_rollup_windows as w')
    .join(trx.raw('unnest(?::uuid[], ?::timestamptz[]) AS r(customer_id, occurred_at)', [reversed.map((r) => r.customerId), reversed.map((r) => r.occurredAt.toISOString())]), 'r.customer_id', 'w.customer_id')
    .whereRaw('w.period_start <= r.occurred_at AND r.occurred_at < w.period_end')
    .select('w.id');
  for (const table of ['usage_rollup_distinct_values', 'usage_rollups', 'usage_rollup_window_metrics']) {
    await trx(table).whereIn('window_id', windows.clone()).delete();
  }
}

/**
 * Registers a window and seeds the totals of these metrics from the raw events (those not seeded yet), under
 * the customer's exclusive rollup lock. Idempotent; a window read once costs nothing more to keep.
 */
export async function seedRollups(db: Knex, window: RollupWindow, metricIds: readonly string[]): Promise<void> {
  await db.transaction(async (trx) => {
    await trx.raw('SELECT pg_advisory_xact_lock(?, hashtext(?))', [ROLLUP_LOCK_CLASS, window.customerId]);
    await trx('usage_rollup_windows')
      .insert({ customer_id: window.customerId, period_start: window.from, period_end: window.to })
      .onConflict(['customer_id', 'period_start', 'period_end'])
      .ignore();
    const { id: windowId } = await trx('usage_rollup_windows')
      .where({ customer_id: window.customerId, period_start: window.from, period_end: window.to })
      .first('id');
    const seeded: { metric_id: string }[] = await trx('usage_rollup_window_metrics')
      .insert(metricIds.map((metricId) => ({ window_id: windowId, metric_id: metricId })))
      .onConflict(['window_id', 'metric_id'])
      .ignore()
      .returning('metric_id');
    if (seeded.length === 0) return;
    // A total row from the start, even with no events: a hard-limit check locks it (store/entitlements.ts).
    await trx('usage_rollups')
      .insert(seeded.map((row) => ({ window_id: windowId, metric_id: row.metric_id, dimension_key: '' })))
      .onConflict(['window_id', 'metric_id', ROLLUP_KEY_DIGEST])
      .ignore();
    await trx.raw(
      `WITH src AS (
         SELECT id, customer_id, event_type, occurred_at, properties FROM usage_events
         WHERE customer_id = ? AND occurred_at >= ? AND occurred_at < ?
           AND reversed_by_event_id IS NULL AND reverses_event_id IS NULL -- reversals and what they reversed count nothing
           AND period_close_id IS NULL -- claimed by a closed period: not open usage (a claim forgets the window)
       ),
       ${foldIntoRollupsSql('AND wm.window_id = ? AND wm.metric_id = ANY(?::uuid[])')}
       SELECT count(*) FROM folded`,
      [window.customerId, window.from, window.to, SIGNED_VALUE, UNSIGNED_VALUE, windowId, seeded.map((row) => row.metric_id)],
    );
  });
}

/** Seeds these metrics' totals of the window unless they are seeded already (one read when they are). */
export async function ensureRollupsSeeded(db: Knex, window: RollupWindow, metricIds: readonly string[]): Promise<void> {
  const [{ seeded }] = (
    await db.raw<{ rows: { seeded: string }[] }>(
      `SELECT count(*) AS seeded FROM usage_rollup_windows w JOIN usage_rollup_window_metrics wm ON wm.window_id = w.id
       WHERE w.customer_id = ? AND w.period_start = ? AND w.period_end = ? AND wm.metric_id = ANY(?::uuid[])`,
      [window.customerId, window.from, window.to, [...metricIds]],
    )
  ).rows;
  if (Number(seeded) < new Set(metricIds).size) await seedRollups(db, window, metricIds);
}

interface RollupReadRow {
  metric_id: string;
  seeded: boolean;
  /** null when the window or metric has no totals yet (then it is the total's row, all zero). */
  dimension_key: string | null;
  event_count: string;
  value_count: string;
  sum_quantity: string;
  max_quantity: string;
  distinct_count: string;
  latest_quantity: string;
}

/** The quantity a metric's aggregation gives from its totals: the rollup twin of aggregationSql in store/usage.ts. */
function quantityOf(metric: MetricRow, row: RollupReadRow): string {
  switch (metric.aggregation) {
    case 'count':
      return metric.property === null ? row.event_count : row.value_count;
    case 'sum':
      return row.sum_quantity;
    case 'max':
      return row.max_quantity;
    case 'unique_count':
      return row.distinct_count;
    case 'latest':
      return row.latest_quantity;
    // Seat-like metrics bill a prorated quantity read from raw changes (store/seat-usage.ts); their totals only
    // serve the daily chart: the net seats added that day (not below 0), or the highest level set that day.
    case 'prorated_sum':
      return row.sum_quantity;
    case 'prorated_latest':
      return row.max_quantity;
  }
}

const isGrouped = (metric: MetricRow): boolean => (metric.group_by?.length ?? 0) > 0;

/** One statement: each metric's total row and, for a grouped metric, one row per combination it has seen. */
async function readRollupRows(db: Db, window: RollupWindow, metrics: readonly MetricRow[]): Promise<RollupReadRow[]> {
  const values = [metrics.map((metric) => metric.id), metrics.map(isGrouped), window.customerId, window.from, window.to];
  // Prepared (parsed and planned once per connection) unless inside a transaction, which has its own connection.
  if (!db.isTransaction) return queryPrepared<RollupReadRow>(db, 'rollup-read-window', READ_WINDOW_SQL, values);
  return (await db.raw<{ rows: RollupReadRow[] }>(READ_WINDOW_SQL.replace(/\$\d+/g, '?'), values)).rows;
}

const READ_WINDOW_SQL = `SELECT m.id AS metric_id, wm.metric_id IS NOT NULL AS seeded, r.dimension_key,
            coalesce(r.event_count, 0)::text AS event_count, coalesce(r.value_count, 0)::text AS value_count,
            greatest(coalesce(r.value_sum, 0), 0)::text AS sum_quantity, coalesce(r.value_max, 0)::text AS max_quantity,
            coalesce(r.distinct_count, 0)::text AS distinct_count, coalesce(r.latest_value, 0)::text AS latest_quantity
     FROM unnest($1::uuid[], $2::boolean[]) AS m(id, grouped)
     LEFT JOIN usage_rollup_windows w ON w.customer_id = $3 AND w.period_start = $4 AND w.period_end = $5
     LEFT JOIN usage_rollup_window_metrics wm ON wm.window_id = w.id AND wm.metric_id = m.id
     LEFT JOIN usage_rollups r ON r.window_id = w.id AND r.metric_id = m.id AND (r.dimension_key = '' OR m.grouped)`;

/** A metric's usage from the totals; valueSum is the sum of its readable values (what a percentage charge rates). */
export type RolledUsage = MetricUsage & { groups?: UsageGroup[]; valueSum: string };

/**
 * The open usage of these metrics in a customer's window, from the rollups: the same quantities, event counts and
 * (for a metric with group_by) per-combination groups as aggregating the unclaimed raw events (store/usage.ts and
 * store/dimension-usage.ts, scope 'unclaimed'). Seeds the window on first read. Claimed events are never in the
 * totals: the seed skips them and claiming one forgets the windows it falls in (forgetRollupsOverlapping).
 */
export async function rollupUsage(db: Knex, window: RollupWindow, metrics: readonly MetricRow[]): Promise<Map<string, RolledUsage>> {
  if (metrics.length === 0) return new Map();
  let rows = await readRollupRows(db, window, metrics);
  const unseeded = [...new Set(rows.filter((row) => !row.seeded).map((row) => row.metric_id))];
  if (unseeded.length > 0) {
    await seedRollups(db, window, unseeded);
    rows = await readRollupRows(db, window, metrics);
  }
  const totals = new Map<string, RollupReadRow>();
  const combinations = new Map<string, RollupReadRow[]>();
  for (const row of rows) {
    if (row.dimension_key === null || row.dimension_key === '') totals.set(row.metric_id, row);
    else combinations.set(row.metric_id, [...(combinations.get(row.metric_id) ?? []), row]);
  }
  return new Map(
    metrics.map((metric) => {
      const total = totals.get(metric.id)!;
      const usage: RolledUsage = { quantity: quantityOf(metric, total), eventCount: Number(total.event_count), valueSum: total.sum_quantity };
      if (isGrouped(metric)) {
        usage.groups = (combinations.get(metric.id) ?? [])
          .filter((row) => Number(row.event_count) > 0)
          .map((row) => ({ dimensions: JSON.parse(row.dimension_key!) as Record<string, string>, quantity: quantityOf(metric, row), eventCount: Number(row.event_count) }));
      }
      return [metric.code, usage];
    }),
  );
}

/**
 * The totals (no per-combination split) of several windows of one customer, e.g. the days of a period for the usage
 * page's chart: one read for all of them, seeding those read for the first time. Indexed like `windows`.
 */
export async function rollupUsageOfWindows(
  db: Knex,
  customerId: string,
  windows: readonly { from: Date; to: Date }[],
  metrics: readonly MetricRow[],
): Promise<Map<string, MetricUsage>[]> {
  if (windows.length === 0 || metrics.length === 0) return windows.map(() => new Map());
  const read = async () =>
    (
      await db.raw<{ rows: (RollupReadRow & { window_index: number })[] }>(
        `SELECT x.window_index::int AS window_index, m.id AS metric_id, wm.metric_id IS NOT NULL AS seeded, r.dimension_key,
                coalesce(r.event_count, 0)::text AS event_count, coalesce(r.value_count, 0)::text AS value_count,
                greatest(coalesce(r.value_sum, 0), 0)::text AS sum_quantity, coalesce(r.value_max, 0)::text AS max_quantity,
                coalesce(r.distinct_count, 0)::text AS distinct_count, coalesce(r.latest_value, 0)::text AS latest_quantity
         FROM unnest(?::timestamptz[], ?::timestamptz[]) WITH ORDINALITY AS x(period_start, period_end, window_index)
         CROSS JOIN unnest(?::uuid[]) AS m(id)
         LEFT JOIN usage_rollup_windows w ON w.customer_id = ? AND w.period_start = x.period_start AND w.period_end = x.period_end
         LEFT JOIN usage_rollup_window_metrics wm ON wm.window_id = w.id AND wm.metric_id = m.id
         LEFT JOIN usage_rollups r ON r.window_id = w.id AND r.metric_id = m.id AND r.dimension_key = ''`,
        [windows.map((window) => window.from.toISOString()), windows.map((window) => window.to.toISOString()), metrics.map((metric) => metric.id), customerId],
      )
    ).rows;
  let rows = await read();
  const unseeded = new Map<number, Set<string>>();
  for (const row of rows) if (!row.seeded) unseeded.set(row.window_index, (unseeded.get(row.window_index) ?? new Set()).add(row.metric_id));
  if (unseeded.size > 0) {
    for (const [index, metricIds] of unseeded) await seedRollups(db, { customerId, ...windows[index - 1] }, [...metricIds]);
    rows = await read();
  }
  const byId = new Map(metrics.map((metric) => [metric.id, metric]));
  const result = windows.map(() => new Map<string, MetricUsage>());
  for (const row of rows) {
    const metric = byId.get(row.metric_id)!;
    result[row.window_index - 1].set(metric.code, { quantity: quantityOf(metric, row), eventCount: Number(row.event_count) });
  }
  return result;
}

/**
 * Forgets the totals of a customer's windows that overlap [from, to), under the customer's exclusive rollup lock:
 * events there were just claimed by a closed period (store/usage.ts), and claimed events are not open usage. The
 * next read seeds them again from the unclaimed events. Call it before claiming: the lock is then taken before
 * any event row is, in the order ingestion takes them (advisory lock, then rows), so the two cannot deadlock.
 */
export async function forgetRollupsOverlapping(trx: Knex.Transaction, customerId: string, from: Date, to: Date): Promise<void> {
  await trx.raw('SELECT pg_advisory_xact_lock(?, hashtext(?))', [ROLLUP_LOCK_CLASS, customerId]);
  const windows = trx('usage_rollup_windows').where({ customer_id: customerId }).andWhere('period_start', '<', to).andWhere('period_end', '>', from).select('id');
  for (const table of ['usage_rollup_distinct_values', 'usage_rollups', 'usage_rollup_window_metrics']) {
    await trx(table).whereIn('window_id', windows.clone()).delete();
  }
}
