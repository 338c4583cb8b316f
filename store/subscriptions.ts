import type { Knex } from 'knex';

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

export interface PlanRow {
  id: string;
  code: string;
  version: number;
  name: string;
  currency: string;
  billing_interval: string;
  trial_period: string | null;
  flat_fee: string;
  charges: unknown[];
  settings: Record<string, unknown>;
  created_at: Date;
}

export interface CustomerRow {
  id: string;
  external_id: string;
  name: string;
  email: string | null;
  currency: string;
  payment_method: string | null;
  created_at: Date;
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

export async function findPlan(db: Knex | Knex.Transaction, planId: string): Promise<PlanRow> {
  const plan = await db<PlanRow>('plans').where({ id: planId }).first();
  if (!plan) throw new Error(`plan ${planId} not found`);
  return plan;
}
