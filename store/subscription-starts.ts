import type { Knex } from 'knex';

/**
 * Each customer's earliest subscription start (any status: a canceled subscription's periods were billable
 * too). Ingestion refuses usage before it: no period of any subscription could ever bill it. Customers without a
 * subscription are absent from the map.
 */
export async function firstSubscriptionStarts(db: Knex | Knex.Transaction, customerIds: readonly string[]): Promise<Map<string, Date>> {
  if (customerIds.length === 0) return new Map();
  const rows: { customer_id: string; first_start: Date }[] = await db('subscriptions')
    .whereIn('customer_id', [...new Set(customerIds)])
    .groupBy('customer_id')
    .select('customer_id', db.raw('min(start_at) AS first_start'));
  return new Map(rows.map((row) => [row.customer_id, row.first_start]));
}

export interface FirstSubscriptionStart {
  /** The earliest start over all the customer's subscriptions (what ingestion checks against). */
  readonly start: Date;
  /**
   * Whether that start belongs to a subscription that can never be removed: one past `scheduled` (a `scheduled` row
   * whose workflow failed to start is deleted again, api/subscription-start.ts). Only a settled start may be cached.
   */
  readonly settled: boolean;
}

/** firstSubscriptionStarts, with whether each start is settled (for the API's cache, api/customer-directory.ts). */
export async function firstSubscriptionStartsSettled(db: Knex | Knex.Transaction, customerIds: readonly string[]): Promise<Map<string, FirstSubscriptionStart>> {
  if (customerIds.length === 0) return new Map();
  const rows: { customer_id: string; first_start: Date; first_settled_start: Date | null }[] = await db('subscriptions')
    .whereIn('customer_id', [...new Set(customerIds)])
    .groupBy('customer_id')
    .select('customer_id', db.raw('min(start_at) AS first_start'), db.raw(`min(start_at) FILTER (WHERE status <> 'scheduled') AS first_settled_start`));
  return new Map(
    rows.map((row) => [row.customer_id, { start: row.first_start, settled: row.first_settled_start !== null && row.first_settled_start.getTime() === row.first_start.getTime() }]),
  );
}
