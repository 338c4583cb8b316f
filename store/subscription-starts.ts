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
