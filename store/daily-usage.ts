import type { Knex } from 'knex';
import { usageCharges } from '../domain/plan-terms';
import type { Charge } from '../domain/rating';
import { Aggregation, findMetricsByCode, MetricRow } from './catalog';
import { rollupUsageOfWindows } from './rollups';
import { aggregationSql, numericTextFor } from './usage';

/**
 * Usage per UTC day, for the customer usage page's chart. It reads the same events as the real-time usage endpoint
 * (the customer's unclaimed events in the open period, matched by each metric's event type and filters), so for
 * `count` and `sum` the days add up to the period's quantity. For `max`, `latest` and `unique_count` a day's value
 * is that aggregation over the day's events alone (the period's maximum is the largest day; unique values can
 * repeat across days, so days do not add up to the period's unique count).
 */

export interface DailyQuantity {
  /** The UTC day, `YYYY-MM-DD`. */
  readonly date: string;
  /** Decimal string (never a JS number), like every quantity. */
  readonly quantity: string;
  readonly eventCount: number;
}

export interface MetricDailyUsage {
  readonly metricCode: string;
  readonly name: string;
  readonly aggregation: Aggregation;
  /** Every day from the first to the last requested, oldest first; days without events have quantity "0". */
  readonly days: readonly DailyQuantity[];
}

/** A period of one year and a day at most is drawn day by day; longer spans keep their last MAX_DAYS days. */
export const MAX_DAYS = 367;

const DAY_MS = 86_400_000;

/** The UTC days that [from, to) touches, oldest first (at most MAX_DAYS, the latest ones). Pure. */
export function utcDaysBetween(from: Date, to: Date): string[] {
  const first = Math.floor(from.getTime() / DAY_MS);
  // `to` is exclusive: an end exactly at midnight does not open another day.
  const last = Math.max(first, Math.ceil(to.getTime() / DAY_MS) - 1);
  const start = Math.max(first, last - MAX_DAYS + 1);
  const days: string[] = [];
  for (let day = start; day <= last; day += 1) days.push(new Date(day * DAY_MS).toISOString().slice(0, 10));
  return days;
}

/** One metric's open usage in [from, to), grouped by UTC day in SQL; only days with events come back. */
async function dailyRows(
  db: Knex,
  metric: MetricRow,
  customerId: string,
  from: Date,
  to: Date,
): Promise<Map<string, { quantity: string; eventCount: number }>> {
  const property = metric.property ?? '';
  const result = await db.raw<{ rows: { day: string; quantity: string; event_count: string }[] }>(
    `WITH scoped AS (
       SELECT id, occurred_at, properties ->> ? AS raw_value,
              CASE WHEN properties ->> ? ~ ? THEN (properties ->> ?)::numeric END AS value
       FROM usage_events
       WHERE period_close_id IS NULL AND customer_id = ? AND occurred_at >= ? AND occurred_at < ?
         AND event_type = ? AND properties @> ?::jsonb
     )
     SELECT to_char(date_trunc('day', occurred_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day,
            (${aggregationSql(metric.aggregation, metric.property)})::text AS quantity,
            count(*) AS event_count
     FROM scoped
     GROUP BY 1
     ORDER BY 1`,
    [property, property, numericTextFor(metric), property, customerId, from, to, metric.event_type, JSON.stringify(metric.filters ?? {})],
  );
  return new Map(result.rows.map((row) => [row.day, { quantity: row.quantity, eventCount: Number(row.event_count) }]));
}

/**
 * Per-day usage of every metric the plan's usage charges price, for the customer's open usage in [from, to).
 * `to` is usually min(now, period end): days that have not begun are not listed. Given the period's end, the days
 * are read from running totals (store/rollups.ts), one window per day clipped to [from, periodEnd), so the page's
 * chart costs the same at a million events as at ten; without it, from the raw events.
 * `usageFrom` (an immediate plan change inside the period) lists the days from `from` but counts events from it
 * only: the proration invoice billed the usage before it, and an event stamped before it that arrives later is late
 * usage, billed by neither invoice, so the days add up to what the period's invoice bills (the usage endpoint).
 */
export async function dailyUsageForCharges(
  db: Knex,
  customerId: string,
  charges: readonly Charge[],
  from: Date,
  to: Date,
  periodEnd?: Date,
  usageFrom: Date = from,
): Promise<MetricDailyUsage[]> {
  const codes = [...new Set(usageCharges(charges).map((charge) => charge.metricCode))];
  const metrics = await findMetricsByCode(db, codes);
  const byCode = new Map(metrics.map((metric) => [metric.code, metric]));
  const days = utcDaysBetween(from, to);
  const queryFrom = new Date(Math.max(from.getTime(), usageFrom.getTime(), Date.parse(`${days[0]}T00:00:00Z`)));
  const listed = codes.filter((code) => byCode.has(code)).map((code) => byCode.get(code)!);
  const perDay = periodEnd ? await dailyFromTotals(db, customerId, listed, days, queryFrom, periodEnd) : undefined;
  return Promise.all(
    listed.map(async (metric) => {
      const rows = perDay?.get(metric.code) ?? (await dailyRows(db, metric, customerId, queryFrom, to));
      return {
        metricCode: metric.code,
        name: metric.name,
        aggregation: metric.aggregation,
        days: days.map((date) => ({ date, quantity: rows.get(date)?.quantity ?? '0', eventCount: rows.get(date)?.eventCount ?? 0 })),
      };
    }),
  );
}

/**
 * Each listed day's totals per metric. A day's window is the whole UTC day clipped to the period (never to "now":
 * a window that moved with the clock would be a new one, seeded by a scan, at every read).
 */
async function dailyFromTotals(
  db: Knex,
  customerId: string,
  metrics: readonly MetricRow[],
  days: readonly string[],
  from: Date,
  periodEnd: Date,
): Promise<Map<string, Map<string, { quantity: string; eventCount: number }>>> {
  const windows = days.map((date) => {
    const dayStart = Date.parse(`${date}T00:00:00Z`);
    return { from: new Date(Math.max(dayStart, from.getTime())), to: new Date(Math.min(dayStart + DAY_MS, periodEnd.getTime())) };
  });
  const usable = windows.map((window, index) => ({ window, index })).filter(({ window }) => window.from < window.to);
  const totals = await rollupUsageOfWindows(db, customerId, usable.map(({ window }) => window), metrics);
  const result = new Map(metrics.map((metric) => [metric.code, new Map<string, { quantity: string; eventCount: number }>()]));
  usable.forEach(({ index }, position) => {
    for (const [code, usage] of totals[position]) if (usage.eventCount > 0) result.get(code)!.set(days[index], usage);
  });
  return result;
}
