import type { Router } from 'express';
import { toDecimal } from '../../domain/money';
import type { Database } from '../../store/database';
import { createMetric, listMetrics } from '../../store/catalog';
import type { MetricCatalog, MetricRow } from '../../store/catalog';
import { ApiProblem } from '../problem';
import { costTableListQuery, createCostTableBody, createMetricBody } from '../schemas';
import { ADMIN_ONLY, declareRoutes } from '../route-declarations';
import { validateCostTable, type CostEntry } from '../../domain/cost-tables';
import { findMetricsByCode } from '../../store/catalog';
import { insertCostTable, listCostTableRows, type CostTableRow } from '../../store/cost-tables';
import { accessOf } from '../access';

export function costTableJson(row: CostTableRow) {
  return {
    metric_code: row.metric_code,
    currency: row.currency,
    effective_from: row.effective_from.toISOString(),
    costs: row.entries.map((entry) => ({ match: entry.match, unit_cost: entry.unitCost })),
    created_by: row.created_by,
    created_at: row.created_at.toISOString(),
  };
}

/**
 * Same entries in the same order: a replay of the stored table, not a conflicting one. A match compares as its set
 * of dimension values, not as JSON text: jsonb hands an object's keys back in its own order (shorter keys first),
 * so the very same body was taken for a different table on its retry.
 */
function sameEntries(a: readonly CostEntry[], b: readonly CostEntry[]): boolean {
  const matchText = (match: CostEntry['match']): string => JSON.stringify(Object.entries(match).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
  return a.length === b.length && a.every((entry, index) => entry.unitCost === b[index].unitCost && matchText(entry.match) === matchText(b[index].match));
}

export function metricJson(row: MetricRow) {
  return {
    id: row.id,
    code: row.code,
    name: row.name,
    event_type: row.event_type,
    aggregation: row.aggregation,
    property: row.property,
    filters: row.filters,
    unit_cost: row.unit_cost === null ? null : toDecimal(row.unit_cost).toString(),
    allow_negative: row.allow_negative,
    group_by: row.group_by ?? [],
    created_at: row.created_at.toISOString(),
  };
}

export function metricsRouter(db: Database, catalog: MetricCatalog): Router {
  const routes = declareRoutes();

  routes.post('/', ADMIN_ONLY, async (req, res) => {
    const body = createMetricBody.parse(req.body);
    const prorated = body.aggregation === 'prorated_sum' || body.aggregation === 'prorated_latest';
    if (prorated && body.group_by.length) {
      throw new ApiProblem('prorated_metric_not_groupable', `a ${body.aggregation} metric cannot split its usage by group_by`);
    }
    const row = await createMetric(db, {
      code: body.code,
      name: body.name,
      eventType: body.event_type,
      aggregation: body.aggregation,
      property: body.property ?? null,
      filters: body.filters,
      unitCost: body.unit_cost ?? null,
      // A prorated_sum metric's values are signed deltas (-1 removes a seat), so ingestion must accept them.
      allowNegative: body.allow_negative || body.aggregation === 'prorated_sum',
      groupBy: body.group_by,
    });
    if (!row) throw new ApiProblem('metric_already_exists', `a metric with code ${body.code} exists`);
    catalog.invalidate();
    res.status(201).json(metricJson(row));
  });

  /** A cost table from effective_from on (docs/pricing.md "Cost tables"). Finance sets what the provider charges us. */
  routes.post('/:code/cost-tables', { allow: ['finance'] }, async (req, res) => {
    const body = createCostTableBody.parse(req.body);
    const [metric] = await findMetricsByCode(db, [req.params.code]);
    if (!metric) throw new ApiProblem('not_found', `no billable metric ${req.params.code}`);
    const effectiveFrom = new Date(body.effective_from);
    const entries: CostEntry[] = body.costs.map((entry) => ({ match: entry.match, unitCost: toDecimal(entry.unit_cost).toFixed() }));
    const problems = validateCostTable({ currency: body.currency, effectiveFrom: effectiveFrom.toISOString(), entries }, metric.group_by ?? []);
    const ambiguous = problems.filter((message) => message.startsWith('ambiguous'));
    if (problems.length > ambiguous.length) {
      throw new ApiProblem('invalid_cost_table', `${problems.length - ambiguous.length} problem(s) in the cost table`, problems.filter((message) => !ambiguous.includes(message)).map((message) => ({ path: 'costs', message })));
    }
    if (ambiguous.length) throw new ApiProblem('ambiguous_cost_table', `${ambiguous.length} pair(s) of costs match the same usage equally`, ambiguous.map((message) => ({ path: 'costs', message })));
    const { row, created } = await insertCostTable(db, { metricCode: metric.code, currency: body.currency, effectiveFrom, entries, createdBy: `api_key:${accessOf(res)?.principal?.keyId ?? 'unknown'}` });
    if (!created && !sameEntries(row.entries, entries)) {
      throw new ApiProblem('cost_table_exists', `metric ${metric.code} has a different ${body.currency} cost table from ${effectiveFrom.toISOString()}; tables are not edited: add one from a later instant`);
    }
    res.status(created ? 201 : 200).json(costTableJson(row));
  });

  routes.get('/:code/cost-tables', { allow: ['app', 'finance'] }, async (req, res) => {
    const query = costTableListQuery.parse(req.query);
    const [metric] = await findMetricsByCode(db, [req.params.code]);
    if (!metric) throw new ApiProblem('not_found', `no billable metric ${req.params.code}`);
    res.json({ data: (await listCostTableRows(db, metric.code, query.currency)).map(costTableJson) });
  });

  routes.get('/', { allow: ['app', 'finance'] }, async (_req, res) => {
    const rows = await listMetrics(db);
    res.json({ data: rows.map(metricJson) });
  });

  return routes.router;
}
