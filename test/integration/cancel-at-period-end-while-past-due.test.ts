/**
 * A cancellation at the period's end asked for while the period's invoice is in dunning (past due), then the invoice
 * paid. The subscription still ends at the period's end, so it stays `pending_cancellation`: paying returned it to
 * `active`, and then the API, ops' search attribute and every lifecycle validator saw an active subscription (a plan
 * change at period end or a pause was answered as accepted for a subscription that was about to end).
 * Time-skipping server and a real Postgres.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { PlanSettings } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import {
  cancelSubscriptionUpdate,
  paymentMethodUpdatedSignal,
  pauseSubscriptionUpdate,
  SEARCH_ATTRIBUTES,
  SUBSCRIPTION_WORKFLOW_TYPE,
  SubscriptionState,
  subscriptionStateQuery,
  TASK_QUEUE,
} from '../../workflows/definitions';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
});

afterAll(async () => stack?.stop());

const state = (handle: WorkflowHandle): Promise<SubscriptionState> => handle.query(subscriptionStateQuery);

test('paying the invoice in dunning keeps a cancellation at period end pending, and the subscription ends there', async () => {
  // Timeline (2028, UTC), 20.00 a month, dunning retries after 1 and 3 days:
  //   Mar 1   period invoice 20.00 declined -> past_due
  //   Mar 2   cancel at period end -> pending_cancellation (effective Apr 1)
  //   Mar 3   a working card: the invoice is paid -> still pending_cancellation (before: active), a pause refused
  //   Apr 1   canceled; no April invoice
  const settings: PlanSettings = { usageGracePeriod: 'PT1M', dunning: { retryAfter: ['P1D', 'P3D'], finalAction: 'cancel' } };
  const plan = await insertPlan(db, { code: 'past-due-cancel-2028', name: 'Monthly', billing_interval: 'P1M', flat_fee: '20.00', settings: settings as Record<string, unknown> });
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declined' });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2028-03-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo('2028-03-01T12:00:00Z');
  await eventually(async () => (await state(handle)).status === 'past_due', 'the declined first invoice');

  await stack.advanceTo('2028-03-02T00:00:00Z');
  const cancel = await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'moving on', requestedBy: 'test' }] });
  expect(cancel).toMatchObject({ status: 'pending_cancellation', effectiveAt: '2028-04-01T00:00:00.000Z' });

  await stack.advanceTo('2028-03-03T00:00:00Z');
  await db('customers').where({ id: customer.id }).update({ payment_method: 'pm_sandbox_ok' });
  await handle.signal(paymentMethodUpdatedSignal);
  await eventually(async () => (await state(handle)).lastInvoice?.status === 'paid', 'the invoice to be paid');
  expect(await state(handle)).toMatchObject({ status: 'pending_cancellation', pendingCancellation: { at: 'period_end' } });
  expect((await db('subscriptions').where({ id: row.id }).first()).status).toBe('pending_cancellation');
  expect((await handle.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.status)).toBe('pending_cancellation');
  await expect(handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ until: null, requestedBy: 'test' }] })).rejects.toThrow();

  const ended = await stack.resultOf<SubscriptionState>(handle);
  expect(ended.status).toBe('canceled');
  const invoices: { period_start: Date; kind: string }[] = await db('invoices').where({ subscription_id: row.id }).orderBy('created_at');
  expect(invoices.map((invoice) => [invoice.kind, invoice.period_start.toISOString().slice(0, 10)])).toEqual([['period', '2028-03-01']]);
});
