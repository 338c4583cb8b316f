import type { Charge } from '../domain/rating';
import type { Database } from './database';
import { ChargeUsage, usageForCharges } from './usage';

/**
 * The open (not yet closed) usage of a customer in [from, to), per metric of the plan's usage charges:
 * what the real-time usage page and cost preview rate with the same function as the invoice.
 */
export async function openUsageForCharges(
  db: Database,
  customerId: string,
  charges: readonly Charge[],
  from: Date,
  to: Date,
): Promise<ChargeUsage[]> {
  return usageForCharges(db, charges, { kind: 'unclaimed', customerId, from, to });
}
