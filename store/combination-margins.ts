/**
 * Per-combination revenue and cost of dimensional charges for a margin window (same window rules as
 * store/margins.ts): revenue from the usage lines that carry a combination (and the per-combination lines of
 * re-ratings carried out as a credit), cost from the usage closures' groups.
 */
import type { Knex } from 'knex';
import { combinationMargins, type CombinationCost, type CombinationMargin, type CombinationRevenue } from '../domain/combination-margins';
import { dimensionKey } from '../domain/dimensions';
import type { CostSegment } from '../domain/cost-tables';

type Db = Knex | Knex.Transaction;

/** subscription id -> its combinations, loss-makers first. Subscriptions without dimensional usage are absent. */
export async function combinationMarginsBySubscription(
  db: Db,
  window: { from: Date; to: Date },
  currencyBySubscription: ReadonlyMap<string, string>,
): Promise<Map<string, CombinationMargin[]>> {
  const ids = [...currencyBySubscription.keys()];
  if (ids.length === 0) return new Map();
  // Threshold invoices are left out: the invoice that closes the usage rates all of it again and credits what they
  // billed as a whole (threshold_credit lines), so their usage lines would count each combination twice.
  // A re-rating that bills more is carried out by an adjustment invoice, whose usage lines name their combination
  // (counted above). One that credits is carried out by a credit note with a single refund line (and/or credit given
  // back to the wallet): its per-combination corrections exist only as the proposal's lines, so they are read there,
  // else a combination the customer was credited for kept the revenue it had before the correction.
  const revenue = await db.raw<{ rows: { subscription_id: string; metric_code: string; dimension_key: string; revenue: string }[] }>(
    `WITH counted AS (
       -- At list price, as the usage lines are (discount lines are not per combination): a reversal credit or a
       -- correction of a discounted period keeps its list amount beside the amount it gave (store/reversal-credits.ts).
       SELECT i.subscription_id, l.metric_code, l.breakdown ->> 'dimensionKey' AS dimension_key, coalesce((l.breakdown ->> 'listAmount')::numeric, l.amount) AS amount
       FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id
       WHERE i.subscription_id = ANY(?::uuid[]) AND i.kind NOT IN ('credit_note', 'threshold') AND i.status NOT IN ('draft', 'void')
         AND l.kind = 'usage' AND l.breakdown ->> 'dimensionKey' IS NOT NULL AND l.period_start >= ? AND l.period_start < ?
       UNION ALL
       SELECT r.subscription_id, line ->> 'metricCode', line -> 'breakdown' ->> 'dimensionKey', coalesce((line -> 'breakdown' ->> 'listAmount')::numeric, (line ->> 'amount')::numeric)
       FROM rerates r
       CROSS JOIN LATERAL jsonb_array_elements(coalesce(r.proposal -> 'lines', '[]'::jsonb)) AS line
       WHERE r.subscription_id = ANY(?::uuid[]) AND r.status = 'finalized' AND r.proposal ->> 'outcome' = 'credit'
         AND line ->> 'kind' = 'usage' AND line -> 'breakdown' ->> 'dimensionKey' IS NOT NULL
         AND (line ->> 'periodStart')::timestamptz >= ? AND (line ->> 'periodStart')::timestamptz < ?
     )
     SELECT subscription_id, metric_code, dimension_key, sum(amount)::text AS revenue FROM counted GROUP BY 1, 2, 3`,
    [ids, window.from, window.to, ids, window.from, window.to],
  );
  const cost = await db.raw<{ rows: { subscription_id: string; metric_code: string; dimensions: Record<string, string>; quantity: string; unit_cost: string | null; group_by: string[] }[] }>(
    `SELECT c.subscription_id, t.key AS metric_code, g.value -> 'dimensions' AS dimensions,
            sum((g.value ->> 'quantity')::numeric)::text AS quantity, m.unit_cost::text AS unit_cost, m.group_by
     FROM usage_period_closures c
     CROSS JOIN LATERAL jsonb_each(c.totals) AS t(key, value)
     CROSS JOIN LATERAL jsonb_array_elements(coalesce(t.value -> 'groups', '[]'::jsonb)) AS g(value)
     JOIN billable_metrics m ON m.code = t.key
     WHERE c.subscription_id = ANY(?::uuid[]) AND c.period_start >= ? AND c.period_start < ?
     GROUP BY c.subscription_id, t.key, g.value -> 'dimensions', m.unit_cost, m.group_by`,
    [ids, window.from, window.to],
  );
  const segmentRows = await db.raw<{ rows: { subscription_id: string; metric_code: string; dimensions: Record<string, string>; group_by: string[]; effective_from: string | null; unit_cost: string | null; quantity: string }[] }>(
    `SELECT c.subscription_id, t.key AS metric_code, g.value -> 'dimensions' AS dimensions, m.group_by,
            s.value ->> 'effectiveFrom' AS effective_from, s.value ->> 'unitCost' AS unit_cost, sum((s.value ->> 'quantity')::numeric)::text AS quantity
     FROM usage_period_closures c
     CROSS JOIN LATERAL jsonb_each(c.totals) AS t(key, value)
     CROSS JOIN LATERAL jsonb_array_elements(coalesce(t.value -> 'groups', '[]'::jsonb)) AS g(value)
     CROSS JOIN LATERAL jsonb_array_elements(coalesce(g.value -> 'costs', '[]'::jsonb)) AS s(value)
     JOIN billable_metrics m ON m.code = t.key
     WHERE c.subscription_id = ANY(?::uuid[]) AND c.period_start >= ? AND c.period_start < ?
     GROUP BY c.subscription_id, t.key, g.value -> 'dimensions', m.group_by, 5, 6
     ORDER BY 5, 6`,
    [ids, window.from, window.to],
  );
  const segments = new Map<string, CostSegment[]>();
  const segmentKey = (subscriptionId: string, metricCode: string, key: string) => `${subscriptionId}\u0000${metricCode}\u0000${key}`;
  for (const row of segmentRows.rows) {
    const key = segmentKey(row.subscription_id, row.metric_code, dimensionKey(row.dimensions, row.group_by));
    segments.set(key, [...(segments.get(key) ?? []), { effectiveFrom: row.effective_from, unitCost: row.unit_cost, quantity: row.quantity }]);
  }
  const revenues = new Map<string, CombinationRevenue[]>();
  for (const row of revenue.rows) {
    revenues.set(row.subscription_id, [...(revenues.get(row.subscription_id) ?? []), { metricCode: row.metric_code, dimensionKey: row.dimension_key, revenue: row.revenue }]);
  }
  const costs = new Map<string, CombinationCost[]>();
  for (const row of cost.rows) {
    const key = dimensionKey(row.dimensions, row.group_by);
    const tabled = segments.get(segmentKey(row.subscription_id, row.metric_code, key));
    const line = { metricCode: row.metric_code, dimensionKey: key, quantity: row.quantity, unitCost: row.unit_cost, ...(tabled ? { segments: tabled } : {}) };
    costs.set(row.subscription_id, [...(costs.get(row.subscription_id) ?? []), line]);
  }
  const result = new Map<string, CombinationMargin[]>();
  for (const id of new Set([...revenues.keys(), ...costs.keys()])) {
    result.set(id, combinationMargins(currencyBySubscription.get(id)!, revenues.get(id) ?? [], costs.get(id) ?? []));
  }
  return result;
}
