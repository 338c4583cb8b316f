/**
 * A cancellation "now" while the subscription is paused, on a plan that credits unused time. Paused time is not
 * billed (a resume moves the calendar on by it), so the service the period's fee paid for ended when the pause
 * began: the credit is for the period from the pause on. It was counted from the cancellation, so the customer
 * lost the paused days, and a pause that outlasted the period's end lost the credit altogether (no closing invoice).
 * Time-skipping server and a real Postgres; each test lives in its own year.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { PlanSettings } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { cancelSubscriptionUpdate, pauseSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, SubscriptionState, TASK_QUEUE } from '../../workflows/definitions';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
});

afterAll(async () => stack?.stop());

const resultOf = (handle: WorkflowHandle): Promise<SubscriptionState> => stack.resultOf<SubscriptionState>(handle);

async function subscribe(code: string, startAt: string) {
  const settings: PlanSettings = { creditUnusedOnCancel: true, usageGracePeriod: 'PT1M' };
  const plan = await insertPlan(db, { code, name: code, billing_interval: 'P1M', flat_fee: '30.00', settings: settings as Record<string, unknown> });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date(startAt));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  return { subscriptionId: row.id, handle };
}

async function invoiceLines(subscriptionId: string): Promise<Array<[string, string, string]>> {
  const invoices = await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy('created_at');
  const rows: Array<[string, string, string]> = [];
  for (const invoice of invoices) {
    const lines = await db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id }).orderBy('position');
    for (const line of lines) rows.push([invoice.kind, line.kind, Number(line.amount).toFixed(2)]);
  }
  return rows;
}

test('canceled now while paused, the unused time is credited from the pause, not from the cancellation', async () => {
  // Timeline (2028, April has 30 days):
  //   Apr 1   monthly 30.00 for [Apr 1, May 1)                           INV 30.00
  //   Apr 6   pause (no end date): 5 days used
  //   Apr 26  cancel now: 25 days of the period unused -> credit -25.00  (counted from Apr 26 it was -5.00)
  const { subscriptionId, handle } = await subscribe('paused-cancel-2028', '2028-04-01T00:00:00Z');
  await stack.advanceTo('2028-04-06T00:00:00Z');
  expect(await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ until: null, requestedBy: 'test' }] })).toMatchObject({ status: 'paused' });
  // A second pause (or a plan change) is refused for being paused: it was refused as subscription_not_active.
  await expect(handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ until: null, requestedBy: 'test' }] })).rejects.toMatchObject({ cause: { message: 'subscription_paused' } });
  await stack.advanceTo('2028-04-26T00:00:00Z');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'not coming back', requestedBy: 'test' }] });
  expect((await resultOf(handle)).status).toBe('canceled');
  expect(await invoiceLines(subscriptionId)).toEqual([
    ['period', 'flat_fee', '30.00'],
    ['closing', 'proration', '-25.00'],
  ]);
});

test('a pause that outlasts the period end still gets the unused time back when canceled now', async () => {
  // Timeline (2029, April has 30 days):
  //   Apr 1   monthly 30.00 for [Apr 1, May 1)                           INV 30.00
  //   Apr 21  pause (no end date): 20 days used, 10 left
  //   May 11  cancel now (no period ended while paused): credit -10.00  (counted from May 11 it was nothing at all)
  const { subscriptionId, handle } = await subscribe('paused-long-2029', '2029-04-01T00:00:00Z');
  await stack.advanceTo('2029-04-21T00:00:00Z');
  expect(await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ until: null, requestedBy: 'test' }] })).toMatchObject({ status: 'paused' });
  await stack.advanceTo('2029-05-11T00:00:00Z');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'not coming back', requestedBy: 'test' }] });
  expect((await resultOf(handle)).status).toBe('canceled');
  expect(await invoiceLines(subscriptionId)).toEqual([
    ['period', 'flat_fee', '30.00'],
    ['closing', 'proration', '-10.00'],
  ]);
});
