/** Starting a subscription's workflow after its row committed (api/workflow-start.ts says why in that order). */
import type { Client } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { WorkflowStartOptions } from '@temporalio/client';
import type { CustomerRow } from '../store/customers';
import type { PlanRow } from '../store/catalog';
import type { Database } from '../store/database';
import { deleteUnstartedSubscription, SubscriptionRow } from '../store/subscriptions';
import { planScheduleTerms } from '../domain/plan-terms';
import { SEARCH_ATTRIBUTES, SUBSCRIPTION_WORKFLOW_TYPE, subscriptionSummary, SubscriptionStatus, SubscriptionWorkflowInput } from '../workflows/definitions';
import { billingTaskQueue } from '../config/tuning';
import { startForCommittedRow } from './workflow-start';

/** Starts the workflow of a committed subscription row, or finds it started; see startForCommittedRow on failure. */
export async function startSubscriptionWorkflow(db: Database, temporal: Client, row: SubscriptionRow, plan: PlanRow, customer: Pick<CustomerRow, 'id'> & Partial<Pick<CustomerRow, 'name' | 'external_id'>>): Promise<void> {
  const input: SubscriptionWorkflowInput = {
    subscriptionId: row.id,
    customerId: customer.id,
    ...(customer.name ? { customerName: customer.name } : {}),
    plan: planScheduleTerms(plan),
    startAt: row.start_at.toISOString(),
  };
  await startForCommittedRow(temporal, {
    workflowId: row.workflow_id,
    removeRow: () => deleteUnstartedSubscription(db, row.id),
    start: () => temporal.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, subscriptionStartOptions(row.workflow_id, input, plan, customer, { status: 'scheduled' })),
  });
}

type StartOptions = WorkflowStartOptions<(input: SubscriptionWorkflowInput) => Promise<void>>;

/**
 * The one definition of how a subscription's workflow is started, for `POST /v1/subscriptions` and the bulk
 * import alike: the configured task queue, a workflow id never reused (not even after the run ended), what ops
 * read in the Temporal UI (the later runs show it as current details) and the search attributes they filter on.
 */
export function subscriptionStartOptions(
  workflowId: string,
  input: SubscriptionWorkflowInput,
  plan: Pick<PlanRow, 'code' | 'version'>,
  customer: Pick<CustomerRow, 'id'> & Partial<Pick<CustomerRow, 'name' | 'external_id'>>,
  initial: { readonly status: SubscriptionStatus; readonly periodEnd?: Date },
): StartOptions {
  return {
    workflowId,
    taskQueue: billingTaskQueue(),
    args: [input],
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    staticSummary: subscriptionSummary({ ...input, planCode: plan.code }),
    staticDetails: `subscription ${input.subscriptionId} · customer ${customer.name ?? ''} (${customer.external_id ?? ''}, ${customer.id}) · plan ${plan.code} v${plan.version}`,
    typedSearchAttributes: [
      { key: SEARCH_ATTRIBUTES.customerId, value: customer.id },
      { key: SEARCH_ATTRIBUTES.planCode, value: plan.code },
      { key: SEARCH_ATTRIBUTES.status, value: initial.status },
      { key: SEARCH_ATTRIBUTES.pastDue, value: false },
      ...(initial.periodEnd ? [{ key: SEARCH_ATTRIBUTES.periodEnd, value: initial.periodEnd }] : []),
    ],
  };
}
