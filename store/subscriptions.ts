import type { Knex } from 'knex';
import type { PlanRow } from './catalog';
import type { CustomerRow } from './customers';

export interface SubscriptionRow {
  id: string;
  customer_id: string;
  plan_id: string;
  status: string;
  workflow_id: string;
  start_at: Date;
  trial_end: Date | null;
  current_period_start: Date | null;
  current_period_end: Date | null;
  canceled_at: Date | null;
  cancel_reason: string | null;
  usage_blocked: boolean;
  created_at: Date;
  updated_at: Date;
}

/** A subscription with the plan version and customer it bills: what invoicing needs in one read. */
export interface SubscriptionContext {
  readonly subscription: SubscriptionRow;
  readonly plan: PlanRow;
  readonly customer: CustomerRow;
}

export async function loadSubscriptionContext(
  db: Knex | Knex.Transaction,
  subscriptionId: string,
): Promise<SubscriptionContext | undefined> {
  const subscription = await db<SubscriptionRow>('subscriptions').where({ id: subscriptionId }).first();
  if (!subscription) return undefined;
  const [plan, customer] = await Promise.all([
    db<PlanRow>('plans').where({ id: subscription.plan_id }).first(),
    db<CustomerRow>('customers').where({ id: subscription.customer_id }).first(),
  ]);
  if (!plan || !customer) throw new Error(`subscription ${subscriptionId} references a missing plan or customer`);
  return { subscription, plan, customer };
}
