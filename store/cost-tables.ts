/**
 * Cost tables (docs/pricing.md, domain/cost-tables.ts): storing them, and splitting a metric's usage by the table
 * in effect at each event's time, so cost_plus prices and the margins report cost every event at its own date.
 */
import type { Knex } from 'knex';
import { combinationOf, dimensionKey } from '../domain/dimensions';
import { CostTableIndex, CostTableMetricMismatch, costSegments, costTableMetricProblem, mergeSegments, type CostEntry, type CostSegment, type CostTable } from '../domain/cost-tables';
import type { MetricRow } from './catalog';
import { scopeSql } from './dimension-usage';
import { aggregationSql, numericTextFor, type UsageScope } from './usage';

type Db = Knex | Knex.Transaction;

export interface CostTableRow {
  id: string;
  metric_code: string;
  currency: string;
  effective_from: Date;
  entries: CostEntry[];
  created_by: string;
  created_at: Date;
}

export const toCostTable = (row: Pick<CostTableRow, 'currency' | 'effective_from' | 'entries'>): CostTable => ({ currency: row.currency, effectiveFrom: row.effective_from.toISOString(), entries: row.entries });

/**
 * Stores a table; a table for the same (metric, currency, effective_from) is never replaced: `created: false` returns
 * the stored one (the caller decides whether the request was a replay of it or a conflicting one). Another
 * currency's table from the same instant is another timeline's, not a conflict.
 */
export async function insertCostTable(db: Db, table: { metricCode: string; currency: string; effectiveFrom: Date; entries: readonly CostEntry[]; createdBy: string }): Promise<{ row: CostTableRow; created: boolean }> {
  // Checked here, where every table is written, so no caller can store a table nothing will ever read (a metric's
  // aggregation and allow_negative never change once it exists). Nothing is written when it is refused.
  const metric = await db<MetricRow>('billable_metrics').where({ code: table.metricCode }).first('code', 'aggregation', 'allow_negative');
  const problem = metric && costTableMetricProblem({ code: metric.code, aggregation: metric.aggregation, allowNegative: metric.allow_negative });
  if (problem) throw new CostTableMetricMismatch(problem);
  const [created] = await db<CostTableRow>('metric_cost_tables')
    .insert({ metric_code: table.metricCode, currency: table.currency, effective_from: table.effectiveFrom, entries: JSON.stringify(table.entries) as unknown as CostEntry[], created_by: table.createdBy })
    .onConflict(['metric_code', 'currency', 'effective_from'])
    .ignore()
    .returning('*');
  if (created) return { row: created, created: true };
  const existing = await db<CostTableRow>('metric_cost_tables').where({ metric_code: table.metricCode, currency: table.currency, effective_from: table.effectiveFrom }).first();
  return { row: existing!, created: false };
}

/** A metric's tables, by currency then date; only one currency's when `currency` is given. */
export async function listCostTableRows(db: Db, metricCode: string, currency?: string): Promise<CostTableRow[]> {
  const where = currency === undefined ? { metric_code: metricCode } : { metric_code: metricCode, currency };
  return db<CostTableRow>('metric_cost_tables').where(where).orderBy([{ column: 'currency' }, { column: 'effective_from' }, { column: 'id' }]);
}

/**
 * metric code -> its tables in `currency`, oldest first; metrics without any in that currency are absent (their
 * usage is uncosted). The currency is the plan's whose usage is costed: another currency's figures are not its costs.
 */
export async function costTablesOf(db: Db, metricCodes: readonly string[], currency: string): Promise<Map<string, CostTable[]>> {
  const result = new Map<string, CostTable[]>();
  if (metricCodes.length === 0) return result;
  const rows: CostTableRow[] = await db<CostTableRow>('metric_cost_tables').whereIn('metric_code', [...new Set(metricCodes)]).andWhere({ currency }).orderBy('effective_from');
  for (const row of rows) result.set(row.metric_code, [...(result.get(row.metric_code) ?? []), toCostTable(row)]);
  return result;
}

/** A metric's usage in a scope, split by the table in effect at each event: the whole metric, and per combination. */
export interface CostedUsage {
  /** The tables' currency: what every unit cost below is in. */
  readonly currency: string;
  readonly costs: CostSegment[];
  /** dimension key -> the combination's segments (metrics with group_by only). */
  readonly byCombination: Map<string, CostSegment[]>;
}

/**
 * Splits a count or sum metric's usage by cost table. The aggregation is the metric's own, per (combination,
 * table), so the segments add up to the metric's quantity (a non-negative count or sum is additive). `tables` are one
 * currency's (costTablesOf), at least one: the segments' unit costs are in it.
 */
export async function costedUsage(db: Db, metric: MetricRow, tables: readonly CostTable[], scope: UsageScope): Promise<CostedUsage> {
  const groupBy = metric.group_by ?? [];
  const property = metric.property ?? '';
  const scoped = scopeSql(scope);
  const dimensionColumns = groupBy.map((_, index) => `, properties ->> ? AS d${index}`).join('');
  const dimensionNames = groupBy.map((_, index) => `d${index}, `).join('');
  const result = await db.raw<{ rows: (Record<string, string | null> & { effective_from: Date | null; quantity: string })[] }>(
    `WITH scoped AS (
       SELECT id, occurred_at, properties ->> ? AS raw_value,
              CASE WHEN properties ->> ? ~ ? THEN (properties ->> ?)::numeric END AS value
              ${dimensionColumns},
              (SELECT max(t.at) FROM unnest(?::timestamptz[]) AS t(at) WHERE t.at <= usage_events.occurred_at) AS effective_from
       FROM usage_events
       WHERE ${scoped.sql} AND event_type = ? AND properties @> ?::jsonb
         AND reverses_event_id IS NULL AND reversed_by_event_id IS NULL
     )
     SELECT ${dimensionNames} effective_from, (${aggregationSql(metric.aggregation, metric.property)})::text AS quantity
     FROM scoped
     GROUP BY ${dimensionNames} effective_from`,
    // The instants of the tables this split is costed with, not the tables stored now: a table committed after the
    // caller read `tables` (READ COMMITTED) labelled events with its instant while the index, which lacks it, costed
    // them at the table before; the closure then recorded one table's date with another's unit cost.
    [property, property, numericTextFor(metric), property, ...groupBy, tables.map((table) => table.effectiveFrom), ...scoped.bindings, metric.event_type, JSON.stringify(metric.filters ?? {})],
  );
  const index = new CostTableIndex(tables, groupBy);
  const perCombination = new Map<string, { dimensions: Record<string, string>; quantities: { effectiveFrom: string | null; quantity: string }[] }>();
  for (const row of result.rows) {
    const values: Record<string, unknown> = {};
    groupBy.forEach((name, position) => (values[name] = row[`d${position}`]));
    const dimensions = combinationOf(values, groupBy);
    const key = dimensionKey(dimensions, groupBy);
    const entry = perCombination.get(key) ?? { dimensions, quantities: [] };
    entry.quantities.push({ effectiveFrom: row.effective_from ? new Date(row.effective_from).toISOString() : null, quantity: row.quantity });
    perCombination.set(key, entry);
  }
  const byCombination = new Map<string, CostSegment[]>();
  for (const [key, entry] of perCombination) byCombination.set(key, costSegments(index, entry.dimensions, entry.quantities));
  return { currency: tables[0].currency, costs: mergeSegments([...byCombination.values()].flat()), byCombination };
}

/** Whether a charge (or any of its combinations) is priced cost_plus. */
export function pricesCostPlus(charge: { readonly price: { readonly model: string }; readonly dimensions?: unknown }): boolean {
  if (charge.price.model === 'cost_plus') return true;
  const dimensions = charge.dimensions as { prices?: { price?: { model?: string } }[]; defaultPrice?: { model?: string } } | undefined;
  return !!dimensions && ((dimensions.prices ?? []).some((entry) => entry.price?.model === 'cost_plus') || dimensions.defaultPrice?.model === 'cost_plus');
}
