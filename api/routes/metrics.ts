import type { Router } from 'express';
import { toDecimal } from '../../domain/money';
import type { Database } from '../../store/database';
import { createMetric, listMetrics } from '../../store/catalog';
import type { MetricCatalog, MetricRow } from '../../store/catalog';
import { ApiProblem } from '../problem';
import { createMetricBody } from '../schemas';
import { ADMIN_ONLY, declareRoutes } from '../route-declarations';

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

  routes.get('/', { allow: ['app', 'finance'] }, async (_req, res) => {
    const rows = await listMetrics(db);
    res.json({ data: rows.map(metricJson) });
  });

  return routes.router;
}
