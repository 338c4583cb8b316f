/**
 * The dimensional charges that refuse unpriced usage at ingestion (`unmatched: "reject"`), per customer: those of
 * the plan each customer's live subscriptions are on. Read only when a batch touches a metric with group_by.
 */
import type { Knex } from 'knex';
import { isDimensionalCharge, type ChargeDimensions, type DimensionalCharge } from '../domain/dimensions';
import type { Charge } from '../domain/rating';


export type RejectingCharge = DimensionalCharge & { dimensions: ChargeDimensions };

/** customer id -> metric code -> the plan charges on it that refuse usage no price matches. */
export async function rejectingDimensionalCharges(
  db: Knex | Knex.Transaction,
  customerIds: readonly string[],
  metricCodes: ReadonlySet<string>,
  /** The ingestion's clock (the API's `now`); the database's when not given. */
  now?: Date,
): Promise<Map<string, Map<string, RejectingCharge[]>>> {
  const result = new Map<string, Map<string, RejectingCharge[]>>();
  if (customerIds.length === 0 || metricCodes.size === 0) return result;
  const rows: { customer_id: string; charges: Charge[] }[] = await db('subscriptions as s')
    .join('plans as p', 'p.id', 's.plan_id')
    .whereIn('s.customer_id', [...new Set(customerIds)])
    // Any subscription that can still bill usage: an ended one bills nothing new.
    .whereNot('s.status', 'canceled')
    // ...and that is live: one scheduled to start later does not bill today's usage (the subscription the customer
    // is on does), so its plan must not refuse it. Before, a customer who had booked a move to a plan refusing
    // unpriced usage lost every event their current plan prices by its default or a wildcard.
    .whereNot((scheduled) => scheduled.where('s.status', 'scheduled').andWhere('s.start_at', '>', now ?? db.fn.now()))
    .select('s.customer_id', 'p.charges');
  for (const row of rows) {
    for (const charge of row.charges ?? []) {
      if (!isDimensionalCharge(charge) || charge.dimensions.unmatched !== 'reject' || !metricCodes.has(charge.metricCode)) continue;
      const byMetric = result.get(row.customer_id) ?? new Map<string, RejectingCharge[]>();
      byMetric.set(charge.metricCode, [...(byMetric.get(charge.metricCode) ?? []), charge]);
      result.set(row.customer_id, byMetric);
    }
  }
  return result;
}
