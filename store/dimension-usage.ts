/**
 * A metric's usage split per combination of its group_by properties (dimensional pricing, docs/pricing.md):
 * the same aggregation as store/usage.ts, grouped by the raw event properties. Missing properties group as
 * absent (a combination without that dimension), which only a wildcard match or the default price can price.
 */
import type { Knex } from 'knex';
import type { UsageGroup } from '../domain/dimensions';
import type { MetricRow } from './catalog';
import { aggregationSql, numericTextFor, type UsageScope } from './usage';

export function scopeSql(scope: UsageScope): { sql: string; bindings: (string | Date)[] } {
  const unclaimedSql = 'period_close_id IS NULL AND customer_id = ? AND occurred_at >= ? AND occurred_at < ?';
  switch (scope.kind) {
    case 'claimed':
      return scope.before ? { sql: 'period_close_id = ? AND occurred_at < ?', bindings: [scope.closeId, scope.before] } : { sql: 'period_close_id = ?', bindings: [scope.closeId] };
    case 'unclaimed':
      return { sql: unclaimedSql, bindings: [scope.customerId, scope.from, scope.to] };
    case 'claimed_and_late':
      return { sql: `(period_close_id = ? OR (${unclaimedSql}))`, bindings: [scope.closeId, scope.customerId, scope.from, scope.to] };
  }
}

/** One row per combination that had events in the scope, in no particular order (rating sorts them). */
export async function aggregateMetricGroups(
  db: Knex | Knex.Transaction,
  metric: MetricRow,
  scope: UsageScope,
  withEventValues: boolean,
): Promise<UsageGroup[]> {
  const groupBy = metric.group_by ?? [];
  if (groupBy.length === 0) return [];
  const property = metric.property ?? '';
  const scoped = scopeSql(scope);
  const dimensionColumns = groupBy.map((_, index) => `properties ->> ? AS d${index}`).join(', ');
  const dimensionNames = groupBy.map((_, index) => `d${index}`).join(', ');
  const result = await db.raw<{ rows: (Record<string, string | null> & { quantity: string; event_count: string; event_values: string[] | null })[] }>(
    `WITH scoped AS (
       SELECT id, occurred_at, properties ->> ? AS raw_value,
              CASE WHEN properties ->> ? ~ ? THEN (properties ->> ?)::numeric END AS value,
              ${dimensionColumns}
       FROM usage_events
       WHERE ${scoped.sql} AND event_type = ? AND properties @> ?::jsonb
         AND reverses_event_id IS NULL AND reversed_by_event_id IS NULL
     )
     SELECT ${dimensionNames},
            (${aggregationSql(metric.aggregation, metric.property)})::text AS quantity,
            count(*) AS event_count,
            ${withEventValues ? `array_agg(value::text ORDER BY id) FILTER (WHERE value IS NOT NULL)` : 'NULL'} AS event_values
     FROM scoped
     GROUP BY ${dimensionNames}`,
    [property, property, numericTextFor(metric), property, ...groupBy, ...scoped.bindings, metric.event_type, JSON.stringify(metric.filters ?? {})],
  );
  return result.rows.map((row) => {
    const dimensions: Record<string, string> = {};
    groupBy.forEach((name, index) => {
      const value = row[`d${index}`];
      if (value !== null && value !== undefined) dimensions[name] = value;
    });
    return {
      dimensions,
      quantity: row.quantity,
      eventCount: Number(row.event_count),
      ...(withEventValues ? { eventValues: row.event_values ?? [] } : {}),
    };
  });
}
