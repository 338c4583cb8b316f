import { planScheduleTerms } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import type { PlanRow } from '../../store/catalog';
import type { CustomerRow } from '../../store/customers';
import type { SubscriptionRow } from '../../store/subscriptions';
import { subscriptionWorkflowId, SubscriptionWorkflowInput } from '../../workflows/definitions';

let sequence = 0;

export async function insertCustomer(db: Database, overrides: Partial<CustomerRow> = {}): Promise<CustomerRow> {
  sequence += 1;
  const [row] = await db<CustomerRow>('customers')
    .insert({ external_id: `cust-${sequence}-${Date.now()}`, name: `Customer ${sequence}`, currency: 'USD', payment_method: 'pm_sandbox_ok', ...overrides })
    .returning('*');
  return row;
}

export async function insertPlan(db: Database, plan: Partial<PlanRow> & Pick<PlanRow, 'code' | 'billing_interval' | 'flat_fee'>): Promise<PlanRow> {
  const [row] = await db<PlanRow>('plans')
    .insert({ version: 1, name: plan.code, currency: 'USD', trial_period: null, ...plan, charges: JSON.stringify(plan.charges ?? []) as never })
    .returning('*');
  return row;
}

/** The subscription row the API would write, and the workflow input it would start. */
export async function insertSubscription(
  db: Database,
  customer: CustomerRow,
  plan: PlanRow,
  startAt: Date,
): Promise<{ row: SubscriptionRow; input: SubscriptionWorkflowInput; workflowId: string }> {
  const [row] = await db<SubscriptionRow>('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'scheduled', workflow_id: 'pending', start_at: startAt })
    .returning('*');
  const workflowId = subscriptionWorkflowId(row.id);
  await db('subscriptions').where({ id: row.id }).update({ workflow_id: workflowId });
  return {
    row: { ...row, workflow_id: workflowId },
    workflowId,
    input: {
      subscriptionId: row.id,
      customerId: customer.id,
      plan: planScheduleTerms(plan),
      startAt: startAt.toISOString(),
    },
  };
}
