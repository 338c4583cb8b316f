/**
 * What a customer usage token sees about itself (GET /v1/usage-token/me): its customer, its own expiry, and that
 * customer's subscriptions with the plan version each is on.
 */
import type { Knex } from 'knex';
import type { PlanRow } from './catalog';

import { CustomerRow, findCustomer } from './customers';
import type { SubscriptionRow } from './subscriptions';

export interface UsageTokenOverview {
  /** undefined when the token's customer no longer exists. */
  readonly customer: CustomerRow | undefined;
  readonly tokenExpiresAt: Date | null;
  /** Newest first. */
  readonly subscriptions: readonly SubscriptionRow[];
  /** The plan versions of those subscriptions, by id. */
  readonly plans: ReadonlyMap<string, PlanRow>;
}

export async function usageTokenOverview(db: Knex, customerId: string, keyId: string): Promise<UsageTokenOverview> {
  const [customer, key, subscriptions] = await Promise.all([
    findCustomer(db, customerId),
    db<{ id: string; expires_at: Date | null }>('api_keys').where({ id: keyId }).first('expires_at'),
    db<SubscriptionRow>('subscriptions').where({ customer_id: customerId }).orderBy([
      { column: 'created_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ]),
  ]);
  if (!customer) return { customer, tokenExpiresAt: key?.expires_at ?? null, subscriptions, plans: new Map() };
  const planIds = [...new Set(subscriptions.map((row) => row.plan_id))];
  const plans = planIds.length ? await db<PlanRow>('plans').whereIn('id', planIds) : [];
  return { customer, tokenExpiresAt: key?.expires_at ?? null, subscriptions, plans: new Map(plans.map((plan) => [plan.id, plan])) };
}
