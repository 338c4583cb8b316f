/**
 * A subscription in dunning that was asked to cancel at the period's end shows `pending_cancellation`, yet its
 * workflow still dunns the unpaid invoice. The API's new-payment-method hook (api/dunning-retry.ts) must tell it to
 * retry at once, as it tells a past-due one.
 *
 * Before, the hook picked subscriptions by status (past_due, suspended, or canceled and still collecting): this one
 * was never signaled, and its invoice stayed unpaid with a working card on file until the next scheduled retry (or,
 * past the last one, was given up as uncollectible). Time-skipping server and a real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { retryDunningOnNewPaymentMethod } from '../../api/dunning-retry';
import type { PlanSettings } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { cancelSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
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

const HOUR = 3_600_000;

test('a new payment method retries at once the invoice in dunning of a subscription pending cancellation', async () => {
  // Timeline (2029, UTC), 20.00 a month, dunning retries after 2 and 5 days:
  //   Mar 1  period invoice declined -> past_due, attempt 2 announced for Mar 3
  //   Mar 2  cancel at period end -> pending_cancellation (still dunning)
  //   Mar 2 01:00 a working card through the API's hook -> paid at once (before: only at Mar 3)
  const settings: PlanSettings = { usageGracePeriod: 'PT1M', dunning: { retryAfter: ['P2D', 'P5D'], finalAction: 'cancel' } };
  const plan = await insertPlan(db, { code: 'pm-wakes-pending-cancel', billing_interval: 'P1M', flat_fee: '20.00', settings: settings as Record<string, unknown> });
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declined' });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2029-03-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });

  // To the day before the start in one step (hour steps from the server's clock are thousands of round trips), then by the hour.
  await stack.advanceTo('2029-02-28T00:00:00Z', 366 * 86_400_000);
  await stack.advanceTo('2029-03-02T00:00:00Z', HOUR);
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({ status: 'past_due' });
  const cancel = await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'moving on', requestedBy: 'test' }] });
  expect(cancel).toMatchObject({ status: 'pending_cancellation' });

  await stack.advanceTo('2029-03-02T01:00:00Z', HOUR);
  await db('customers').where({ id: customer.id }).update({ payment_method: 'pm_sandbox_ok' });
  await retryDunningOnNewPaymentMethod(db, env.client)({ customerId: customer.id, paymentMethod: 'pm_sandbox_ok', previousPaymentMethod: 'pm_sandbox_declined' });
  await stack.advanceTo('2029-03-02T12:00:00Z', HOUR);

  const [invoice] = await db<InvoiceRow>('invoices').where({ subscription_id: row.id }).orderBy('created_at');
  const attempts = (await db('payments').where({ invoice_id: invoice.id }).orderBy('attempt')).map((payment: { status: string }) => payment.status);
  // Before the fix: still open at Mar 2 12:00 with ['failed'], the working card not tried.
  expect({ status: invoice.status, attempts }).toEqual({ status: 'paid', attempts: ['failed', 'succeeded'] });
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({ status: 'pending_cancellation' });
  await handle.terminate('test done');
}, 180_000);
