import type { Router } from 'express';
import type { CombinationMargin, CombinationMarginTotal } from '../../domain/combination-margins';
import type { Margin } from '../../domain/margins';
import type { CostSegment } from '../../domain/cost-tables';
import { toDecimal } from '../../domain/money';
import type { Database } from '../../store/database';
import { marginReport, SubscriptionMargin } from '../../store/margins';
import { marginReportQuery } from '../schemas';
import { declareRoutes } from '../route-declarations';

function marginFigures(margin: Omit<Margin, 'costLines'>) {
  return {
    currency: margin.currency,
    revenue: margin.revenue,
    cost: margin.cost,
    margin: margin.margin,
    margin_percent: margin.marginPercent,
  };
}

/** One share of a quantity costed by a cost table (unit_cost null: the metric's fallback unit_cost applied). */
function segmentJson(segment: CostSegment) {
  return { effective_from: segment.effectiveFrom, quantity: segment.quantity, unit_cost: segment.unitCost };
}

function subscriptionMarginJson(row: SubscriptionMargin) {
  return {
    subscription_id: row.subscriptionId,
    status: row.status,
    customer: { id: row.customerId, external_id: row.customerExternalId, name: row.customerName },
    plan: { code: row.planCode, version: row.planVersion },
    ...marginFigures(row),
    loss_making: toDecimal(row.margin).isNegative(),
    cost_breakdown: row.costLines.map((line) => ({
      metric_code: line.metricCode,
      quantity: line.quantity,
      unit_cost: line.unitCost,
      cost: line.cost,
      ...(line.segments ? { cost_segments: line.segments.map(segmentJson) } : {}),
    })),
    combinations: (row.combinations ?? []).map(combinationMarginJson),
  };
}

/** One (metric, combination)'s figures, per subscription and in the loss-making totals (and in the pricing simulation's JSON). */
export function combinationMarginJson(line: CombinationMargin | CombinationMarginTotal) {
  return {
    metric_code: line.metricCode,
    dimension_key: line.dimensionKey,
    quantity: line.quantity,
    revenue: line.revenue,
    cost: line.cost,
    margin: line.margin,
    loss_making: line.lossMaking,
  };
}

/** Finance reports. Definitions: docs/margins.md. */
export function reportsRouter(db: Database): Router {
  const routes = declareRoutes();

  /**
   * Revenue, usage cost and margin per subscription for [from, to), ascending by margin so loss-makers come first;
   * totals per currency cover every subscription of the window, also those past `limit`.
   */
  routes.get('/margins', { allow: ['finance'] }, async (req, res) => {
    const query = marginReportQuery.parse(req.query);
    const report = await marginReport(db, { from: new Date(query.from), to: new Date(query.to), currency: query.currency });
    res.json({
      from: report.from.toISOString(),
      to: report.to.toISOString(),
      data: report.subscriptions.slice(0, query.limit).map(subscriptionMarginJson),
      has_more: report.subscriptions.length > query.limit,
      totals: report.totals.map((total) => ({ ...marginFigures(total), subscriptions: report.subscriptions.filter((row) => row.currency === total.currency).length })),
      // Over the whole window (also past `limit`): who and what loses money.
      loss_making: {
        customers: report.lossMakingCustomers.map((customer) => ({
          customer: { id: customer.customerId, external_id: customer.customerExternalId },
          subscription_ids: customer.subscriptionIds,
          ...marginFigures(customer),
          loss_making: true,
        })),
        combinations: report.lossMakingCombinations.map((line) => ({ currency: line.currency, ...combinationMarginJson(line), subscriptions: line.subscriptions })),
      },
    });
  });

  return routes.router;
}
