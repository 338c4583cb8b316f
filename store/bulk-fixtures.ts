/**
 * Bulk inserts, maintenance and counts for the benchmarks, the pricing simulation and demo seeding. Product code
 * never calls these: they write rows directly (thousands at a time, skipping the API's checks and audit records)
 * into throwaway databases, or read back what a benchmark reports. Only the queries live here; what the rows mean
 * and when they are written stays with the benchmark or script that calls them.
 */
import type { Knex } from 'knex';
import type { MetricRow, PlanRow } from './catalog';
import type { CustomerRow } from './customers';
import type { InvoiceRow } from './invoices';
import type { SubscriptionRow } from './subscriptions';

type Db = Knex | Knex.Transaction;

// ---------------------------------------------------------------------------------------------------------------
// Catalog

/** A metric row as a fixture gives it; the columns left out take their database defaults. */
export type MetricFixture = Pick<MetricRow, 'code' | 'name' | 'event_type' | 'aggregation' | 'property'> &
  Partial<Pick<MetricRow, 'filters' | 'unit_cost' | 'allow_negative'>>;

/** A plan version row as a fixture gives it, version number included; left-out columns take their defaults. */
export type PlanFixture = Pick<PlanRow, 'code' | 'version' | 'name' | 'currency' | 'billing_interval'> &
  Partial<Pick<PlanRow, 'trial_period' | 'flat_fee' | 'charges' | 'settings'>>;

/** The charges column is JSONB: an array must go as JSON text, or the driver sends it as a Postgres array. */
function planInsertRow(plan: PlanFixture): Record<string, unknown> {
  return plan.charges === undefined ? { ...plan } : { ...plan, charges: JSON.stringify(plan.charges) };
}

export async function insertMetricFixtures(db: Db, metrics: readonly MetricFixture[]): Promise<void> {
  await db('billable_metrics').insert([...metrics]);
}

/** Inserts plan versions as given (one statement) and returns them in the same order. */
export async function insertPlanFixtures(db: Db, plans: readonly PlanFixture[]): Promise<PlanRow[]> {
  return db<PlanRow>('plans').insert(plans.map(planInsertRow)).returning('*');
}

/** Demo seeding: inserts the plan version unless that code and version exist; true when it was inserted. */
export async function insertPlanVersionUnlessExists(db: Db, plan: PlanFixture): Promise<boolean> {
  const inserted = await db('plans').insert(planInsertRow(plan)).onConflict(['code', 'version']).ignore().returning('code');
  return inserted.length > 0;
}

/** Rows of a catalog read from another database, ids and creation times left for this one to assign. */
export interface CatalogCopy {
  readonly metrics: readonly Omit<MetricRow, 'id' | 'created_at'>[];
  readonly plans: readonly Omit<PlanRow, 'id' | 'created_at'>[];
}

/** Copies a catalog row for row (settings the API cannot express come along), all of it or nothing. */
export async function copyCatalog(db: Knex, catalog: CatalogCopy): Promise<void> {
  await db.transaction(async (trx) => {
    for (const metric of catalog.metrics) await trx('billable_metrics').insert({ ...metric, filters: metric.filters ?? {} });
    for (const plan of catalog.plans) await trx('plans').insert({ ...plan, charges: JSON.stringify(plan.charges), settings: plan.settings ?? {} });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Customers, subscriptions, closed usage periods

export type CustomerFixture = Pick<CustomerRow, 'external_id' | 'name' | 'currency'> & Partial<Pick<CustomerRow, 'payment_method'>>;

/** Inserts customers in one statement; their ids and external ids in insertion order. */
export async function insertCustomerFixtures(db: Db, customers: readonly CustomerFixture[]): Promise<Pick<CustomerRow, 'id' | 'external_id'>[]> {
  return db('customers').insert([...customers]).returning(['id', 'external_id']);
}

/** A subscription row as a fixture gives it (id optional: the database assigns one when left out). */
export type SubscriptionFixture = Pick<SubscriptionRow, 'customer_id' | 'plan_id' | 'status' | 'workflow_id' | 'start_at'> &
  Partial<Pick<SubscriptionRow, 'id' | 'current_period_start' | 'current_period_end'>>;

/** Inserts subscriptions in one statement, without starting their workflows. */
export async function insertSubscriptionFixtures(db: Db, subscriptions: readonly SubscriptionFixture[]): Promise<Pick<SubscriptionRow, 'id' | 'customer_id'>[]> {
  return db('subscriptions').insert([...subscriptions]).returning(['id', 'customer_id']);
}

/** Moves the start of these subscriptions (fixtures are created first, their start chosen later). */
export async function setSubscriptionsStartAt(db: Db, subscriptionIds: readonly string[], startAt: Date): Promise<void> {
  await db('subscriptions').whereIn('id', [...subscriptionIds]).update({ start_at: startAt });
}

export interface UsageClosureFixture {
  readonly subscription_id: string;
  readonly customer_id: string;
  readonly period_start: Date;
  readonly period_end: Date;
  readonly totals: Record<string, unknown>;
  readonly event_count: number;
}

/** Inserts closed usage periods in one statement (no events are claimed: the fixture's periods held none). */
export async function insertUsageClosureFixtures(db: Db, closures: readonly UsageClosureFixture[]): Promise<void> {
  await db('usage_period_closures').insert([...closures]);
}

/**
 * Inserts `count` usage events of one customer in one statement (generate_series), without the API's checks and
 * without the rollups ingestion keeps: a window first read afterwards is seeded from these rows. Properties:
 * `tokens` 100..4099, deterministic per index.
 */
export async function insertUsageEventSeries(
  db: Db,
  series: { readonly customerId: string; readonly eventType: string; readonly idPrefix: string; readonly count: number; readonly occurredAt: Date },
): Promise<void> {
  await db.raw(
    `INSERT INTO usage_events (customer_id, event_id, event_type, occurred_at, properties)
     SELECT ?::uuid, ? || g, ?, ?::timestamptz, jsonb_build_object('tokens', 100 + (g * 7919) % 4000)
     FROM generate_series(1, ?::int) AS g`,
    [series.customerId, series.idPrefix, series.eventType, series.occurredAt.toISOString(), series.count],
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Maintenance between benchmark phases

/** Empties usage_events, so each phase starts from the same table and index sizes. */
export async function truncateUsageEvents(db: Knex): Promise<void> {
  await db.raw('TRUNCATE usage_events');
}

/** Forces a checkpoint (needs superuser or pg_checkpoint; the caller decides whether a refusal matters). */
export async function checkpoint(db: Knex): Promise<void> {
  await db.raw('CHECKPOINT');
}

// ---------------------------------------------------------------------------------------------------------------
// Reading back what a benchmark or the simulation reports

export async function countUsageEvents(db: Db): Promise<number> {
  const [{ count }] = await db('usage_events').count<{ count: string }[]>('* as count');
  return Number(count);
}

export async function countSubscriptionsOfPlan(db: Db, planId: string): Promise<number> {
  const [{ count }] = await db('subscriptions').where({ plan_id: planId }).count<{ count: string }[]>('* as count');
  return Number(count);
}

/** Which subscriptions a count covers: those driven by workflows (`subscription:` ids) or billed directly (`direct:`). */
export interface PaidPeriodFilter {
  readonly planId: string;
  readonly workflows: boolean;
  readonly periodStart: Date;
}

/** Paid period invoices starting at `periodStart` of the plan's subscriptions whose workflow id matches. */
export async function countPaidPeriodInvoices(db: Db, of: PaidPeriodFilter): Promise<number> {
  const [{ count }] = await paidPeriodInvoices(db, of).count<{ count: string }[]>('* as count');
  return Number(count);
}

/** When each of those invoices was finalized and paid. */
export async function paidPeriodInvoiceTimes(db: Db, of: PaidPeriodFilter): Promise<Pick<InvoiceRow, 'finalized_at' | 'paid_at'>[]> {
  return paidPeriodInvoices(db, of).select('i.finalized_at', 'i.paid_at');
}

function paidPeriodInvoices(db: Db, of: PaidPeriodFilter): Knex.QueryBuilder {
  return db('invoices as i')
    .join('subscriptions as s', 's.id', 'i.subscription_id')
    .where({ 'i.kind': 'period', 'i.period_start': of.periodStart, 'i.status': 'paid', 's.plan_id': of.planId })
    .andWhere('s.workflow_id', 'like', of.workflows ? 'subscription:%' : 'direct:%');
}

/** Every invoice of these subscriptions, by period then creation. */
export async function invoicesOfSubscriptions(db: Db, subscriptionIds: readonly string[]): Promise<InvoiceRow[]> {
  return db<InvoiceRow>('invoices')
    .whereIn('subscription_id', [...subscriptionIds])
    .orderBy([{ column: 'period_start' }, { column: 'created_at' }]);
}

/** The status of each of these subscriptions (in no particular order). */
export async function subscriptionStatuses(db: Db, subscriptionIds: readonly string[]): Promise<Pick<SubscriptionRow, 'status'>[]> {
  return db<SubscriptionRow>('subscriptions').whereIn('id', [...subscriptionIds]).select('status');
}
