/**
 * Unit economics per subscription for a window [from, to): revenue from invoice lines, usage cost from usage
 * closures, margin. The definition (docs/margins.md), in short:
 *
 *   revenue = Σ amount of the subscription's invoice lines whose line period_start is in [from, to), on every
 *             finalized invoice (not draft, not void) of any kind (period, closing, proration, adjustment, ...),
 *             minus the lines of its non-void credit notes (kind credit_note, positive amounts, linked through
 *             the credited invoice) whose period_start is in [from, to): a refund's lines carry the credited
 *             invoice's period; each credit note of a re-rating counts in the usage period it corrects. Wallet lines
 *             paid by purchased credit or by a refused refund's credit are payment and do not subtract
 *   cost    = per metric: Σ quantity over the subscription's usage closures whose period_start is in [from, to),
 *             × the metric's unit_cost (none set: 0), rounded once; the cost is the sum of those lines
 *   margin  = revenue − cost;  margin % = margin / revenue (null when revenue is 0)
 *
 * Postgres sums the NUMERIC amounts and quantities; domain/margins.ts does the rest of the arithmetic in Decimal.
 */
import type { Knex } from 'knex';
import { combinationTotals, type CombinationMargin, type CombinationMarginTotal } from '../domain/combination-margins';
import { combinationMarginsBySubscription } from './combination-margins';
import { compareByMargin, CostInput, customerMargins, CustomerMargin, Margin, subscriptionMargin, totalMargin } from '../domain/margins';
import type { CostSegment } from '../domain/cost-tables';

type Db = Knex | Knex.Transaction;

export interface MarginQuery {
  readonly from: Date;
  /** Exclusive. */
  readonly to: Date;
  /** Only subscriptions billing in this currency. */
  readonly currency?: string;
  /** Only these subscriptions (the pricing simulation reads its own). */
  readonly subscriptionIds?: readonly string[];
}

export interface SubscriptionMargin extends Margin {
  readonly subscriptionId: string;
  readonly status: string;
  readonly customerId: string;
  readonly customerExternalId: string;
  readonly customerName: string;
  /** The plan version the subscription is on now (the window may have been billed under earlier ones). */
  readonly planCode: string;
  readonly planVersion: number;
  /** Per combination of dimensional charges (docs/pricing.md); empty for plans without them. */
  readonly combinations?: readonly CombinationMargin[];
}

export interface MarginReport {
  readonly from: Date;
  readonly to: Date;
  /** Every subscription with revenue or usage cost in the window, ascending by margin (loss-makers first). */
  readonly subscriptions: readonly SubscriptionMargin[];
  /** Per currency, over all of `subscriptions`. */
  readonly totals: readonly Omit<Margin, 'costLines'>[];
  /** Customers (all their subscriptions in one currency) whose margin is negative, worst first. */
  readonly lossMakingCustomers: readonly CustomerMargin[];
  /** Combinations of dimensional charges, summed over all subscriptions, whose margin is negative, worst first. */
  readonly lossMakingCombinations: readonly CombinationMarginTotal[];
}

/** Invoices that count: finalized ones. Drafts are not invoices yet; void ones were withdrawn. */
const UNCOUNTED_STATUSES = ['draft', 'void'];
const CREDIT_NOTE = 'credit_note';

export async function marginReport(db: Db, query: MarginQuery): Promise<MarginReport> {
  const ids = query.subscriptionIds ? [...query.subscriptionIds] : null;
  if (ids && ids.length === 0) return { from: query.from, to: query.to, subscriptions: [], totals: [], lossMakingCustomers: [], lossMakingCombinations: [] };
  const [revenue, costs] = await Promise.all([revenueBySubscription(db, query, ids), costsBySubscription(db, query, ids)]);

  const subscriptionIds = [...new Set([...revenue.keys(), ...costs.keys()])];
  const details = await subscriptionDetails(db, subscriptionIds);
  const rows: SubscriptionMargin[] = [];
  for (const id of subscriptionIds) {
    const detail = details.get(id);
    if (!detail || (query.currency && detail.currency !== query.currency)) continue;
    const margin = subscriptionMargin({ currency: detail.currency, revenue: revenue.get(id) ?? '0', costs: costs.get(id) ?? [] });
    rows.push({
      subscriptionId: id,
      status: detail.status,
      customerId: detail.customer_id,
      customerExternalId: detail.external_id,
      customerName: detail.name,
      planCode: detail.plan_code,
      planVersion: detail.plan_version,
      ...margin,
    });
  }
  const combinations = await combinationMarginsBySubscription(db, query, new Map(rows.map((row) => [row.subscriptionId, row.currency])));
  for (const row of rows) Object.assign(row, { combinations: combinations.get(row.subscriptionId) ?? [] });
  rows.sort((a, b) => compareByMargin(a, b) || (a.subscriptionId < b.subscriptionId ? -1 : a.subscriptionId > b.subscriptionId ? 1 : 0));

  const currencies = [...new Set(rows.map((row) => row.currency))].sort();
  const totals = currencies.map((currency) => totalMargin(currency, rows.filter((row) => row.currency === currency)));
  const lossMakingCustomers = customerMargins(rows).filter((customer) => customer.lossMaking);
  const lossMakingCombinations = combinationTotals(rows.map((row) => ({ currency: row.currency, combinations: row.combinations ?? [] }))).filter((line) => line.lossMaking);
  return { from: query.from, to: query.to, subscriptions: rows, totals, lossMakingCustomers, lossMakingCombinations };
}

/** subscription id -> Σ line amounts in the window (credit notes subtracted), as NUMERIC text. */
async function revenueBySubscription(db: Db, query: MarginQuery, ids: string[] | null): Promise<Map<string, string>> {
  const onlyIds = ids ? 'AND i.subscription_id = ANY(?::uuid[])' : '';
  const onlyCreditedIds = ids ? 'AND credited.subscription_id = ANY(?::uuid[])' : '';
  const result = await db.raw<{ rows: { subscription_id: string; revenue: string }[] }>(
    `WITH counted AS (
       SELECT i.subscription_id, l.amount
       FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id
       WHERE i.subscription_id IS NOT NULL AND i.kind <> ? AND i.status <> ALL(?::text[])
         AND l.period_start >= ? AND l.period_start < ? ${onlyIds}
         -- "Credits applied" lines that are payment, not a price cut, do not lower revenue:
         -- * a refund the gateway refused became wallet credit (grant credit_note:<note or credit total>,
         --   store/credit-notes.ts settleRefund); the note (or negative invoice) already took it off revenue, so the
         --   line that later spends that grant is the same credit again, not a second one;
         -- * purchased credit is the customer's prepaid money (its top-up invoice has no subscription, so it counts
         --   nowhere else): usage it pays is revenue, as usage paid by card is. Subtracted, a prepaid customer's
         --   usage showed 0.00 revenue and the customer as loss-making. Promotional and plan-included credit is a
         --   price cut and still subtracts.
         AND NOT EXISTS (
           SELECT 1 FROM wallet_grants g
           WHERE g.id::text = l.breakdown ->> 'walletGrantId' AND (left(g.grant_key, 12) = 'credit_note:' OR g.source = 'purchased')
         )
       UNION ALL
       SELECT credited.subscription_id, -l.amount
       FROM invoices note
       JOIN invoices credited ON credited.id = note.credited_invoice_id
       JOIN invoice_lines l ON l.invoice_id = note.id
       -- A re-rating's notes count in the usage period it corrects: every one it issued (each keyed rerate:<id>,
       -- activities/rerate-refund.ts: an open adjustment's, the re-rated invoice's, the threshold invoices'), not only
       -- the first, which result_invoice_id names (a note on the period invoice after an adjustment's note counted in
       -- the month after). The key's id is read only when it is one: a cast of any other key would fail.
       LEFT JOIN rerates r ON r.result_invoice_id = note.id
       LEFT JOIN rerates keyed ON keyed.id = CASE WHEN note.idempotency_key ~ '^rerate:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' THEN substr(note.idempotency_key, 8)::uuid END
       WHERE note.kind = ? AND note.status <> ALL(?::text[]) AND credited.subscription_id IS NOT NULL
         AND coalesce((coalesce(r.proposal, keyed.proposal) -> 'usagePeriod' ->> 'start')::timestamptz, l.period_start) >= ?
         AND coalesce((coalesce(r.proposal, keyed.proposal) -> 'usagePeriod' ->> 'start')::timestamptz, l.period_start) < ? ${onlyCreditedIds}
     )
     SELECT subscription_id, sum(amount)::text AS revenue FROM counted GROUP BY subscription_id`,
    [
      CREDIT_NOTE, UNCOUNTED_STATUSES, query.from, query.to, ...(ids ? [ids] : []),
      CREDIT_NOTE, UNCOUNTED_STATUSES, query.from, query.to, ...(ids ? [ids] : []),
    ],
  );
  return new Map(result.rows.map((row) => [row.subscription_id, row.revenue]));
}

/** subscription id -> per metric: Σ quantity over the window's closures and the metric's unit cost. */
async function costsBySubscription(db: Db, query: MarginQuery, ids: string[] | null): Promise<Map<string, CostInput[]>> {
  const result = await db.raw<{ rows: { subscription_id: string; metric_code: string; quantity: string; unit_cost: string | null }[] }>(
    `SELECT c.subscription_id, t.key AS metric_code, sum((t.value ->> 'quantity')::numeric)::text AS quantity, m.unit_cost::text AS unit_cost
     FROM usage_period_closures c
     CROSS JOIN LATERAL jsonb_each(c.totals) AS t(key, value)
     LEFT JOIN billable_metrics m ON m.code = t.key
     WHERE c.period_start >= ? AND c.period_start < ? ${ids ? 'AND c.subscription_id = ANY(?::uuid[])' : ''}
     GROUP BY c.subscription_id, t.key, m.unit_cost`,
    [query.from, query.to, ...(ids ? [ids] : [])],
  );
  // The shares each closure's cost tables costed (totals.<metric>.costs, store/cost-tables.ts), summed per table
  // and unit cost over the window.
  const segmentRows = await db.raw<{ rows: { subscription_id: string; metric_code: string; effective_from: string | null; unit_cost: string | null; quantity: string }[] }>(
    `SELECT c.subscription_id, t.key AS metric_code, s.value ->> 'effectiveFrom' AS effective_from, s.value ->> 'unitCost' AS unit_cost,
            sum((s.value ->> 'quantity')::numeric)::text AS quantity
     FROM usage_period_closures c
     CROSS JOIN LATERAL jsonb_each(c.totals) AS t(key, value)
     CROSS JOIN LATERAL jsonb_array_elements(coalesce(t.value -> 'costs', '[]'::jsonb)) AS s(value)
     WHERE c.period_start >= ? AND c.period_start < ? ${ids ? 'AND c.subscription_id = ANY(?::uuid[])' : ''}
     GROUP BY 1, 2, 3, 4
     ORDER BY 1, 2, 3, (s.value ->> 'unitCost')::numeric NULLS LAST`,
    [query.from, query.to, ...(ids ? [ids] : [])],
  );
  const segments = new Map<string, CostSegment[]>();
  for (const row of segmentRows.rows) {
    const key = `${row.subscription_id}\u0000${row.metric_code}`;
    segments.set(key, [...(segments.get(key) ?? []), { effectiveFrom: row.effective_from, unitCost: row.unit_cost, quantity: row.quantity }]);
  }
  const costs = new Map<string, CostInput[]>();
  for (const row of result.rows) {
    const lines = costs.get(row.subscription_id) ?? [];
    const tabled = segments.get(`${row.subscription_id}\u0000${row.metric_code}`);
    lines.push({ metricCode: row.metric_code, quantity: row.quantity, unitCost: row.unit_cost, ...(tabled ? { segments: tabled } : {}) });
    costs.set(row.subscription_id, lines);
  }
  return costs;
}

interface SubscriptionDetail {
  id: string;
  status: string;
  customer_id: string;
  external_id: string;
  name: string;
  plan_code: string;
  plan_version: number;
  currency: string;
}

async function subscriptionDetails(db: Db, ids: readonly string[]): Promise<Map<string, SubscriptionDetail>> {
  if (ids.length === 0) return new Map();
  const rows: SubscriptionDetail[] = await db('subscriptions as s')
    .join('customers as cu', 'cu.id', 's.customer_id')
    .join('plans as p', 'p.id', 's.plan_id')
    .whereIn('s.id', ids)
    .select('s.id', 's.status', 's.customer_id', 'cu.external_id', 'cu.name', 'p.code as plan_code', 'p.version as plan_version', 'p.currency');
  return new Map(rows.map((row) => [row.id, row]));
}
