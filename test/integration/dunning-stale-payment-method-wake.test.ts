/**
 * A new payment method announced (signal) while a dunning attempt is in flight, and that attempt pays the invoice:
 * the wake-up it meant was used up by the paid attempt. It must not survive the dunning it belonged to.
 *
 * Before, the flag stayed set after the invoice was paid, and the next decline in the same run (here a plan change's
 * proration) had its first scheduled retry made at once, right after the notice announcing it two days later:
 * the attempt time disagreed with the notice, and the schedule lost one retry (the subscription is given up a
 * retry interval early). Time-skipping server and a real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { planScheduleTerms } from '../../domain/plan-terms';
import type { CustomerRow } from '../../store/customers';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { changePlanUpdate, paymentMethodUpdatedSignal, SUBSCRIPTION_WORKFLOW_TYPE, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { eventually } from '../support/eventually';
import { runHistories } from '../support/histories';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { workflowBundle } from '../support/temporal';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
});

afterAll(async () => stack?.stop());

// Time moves in 6-hour steps (each a round trip to the time-skipping server; hour steps took 180 s on a loaded CI machine).
const STEP = 6 * 3_600_000;
const setCard = (customer: CustomerRow, paymentMethod: string) => db('customers').where({ id: customer.id }).update({ payment_method: paymentMethod });

test('a payment method signaled while the paying attempt is in flight does not make the next dunning retry early', async () => {
  // Timeline (2032): Jan 1 basic 10.00 declined -> past_due, attempt 2 announced for Jan 3.
  //   Jan 2 the customer's new card (slow, working) is stored; Jan 3 attempt 2 charges it, and while it is in flight
  //   the payment-method signal arrives (the API's hook ran after the attempt read the card) -> paid, active.
  //   Jan 10 the card declines again and an immediate change to pro bills a proration: declined -> attempt 2
  //   announced for Jan 12. Nothing may be charged before Jan 12.
  const dunning = { retryAfter: ['P2D', 'P2D', 'P2D'], finalAction: 'cancel' };
  const basic = await insertPlan(db, { code: 'stale-wake-basic', billing_interval: 'P1M', flat_fee: '10.00', settings: { dunning } as never });
  const pro = await insertPlan(db, { code: 'stale-wake-pro', billing_interval: 'P1M', flat_fee: '7440.00', settings: { dunning } as never });
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declined' });
  const { row, input, workflowId } = await insertSubscription(db, customer, basic, new Date('2032-01-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });

  await stack.advanceTo('2032-01-02T00:00:00Z', STEP);
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({ status: 'past_due' });
  await setCard(customer, 'pm_sandbox_slow');
  const [first] = await db<InvoiceRow>('invoices').where({ subscription_id: row.id }).orderBy('created_at');
  // Up to the announced instant of attempt 2; the slow card then keeps the attempt in flight for 2 s (real time).
  await stack.advanceTo('2032-01-03T00:00:00Z', STEP);
  await eventually(async () => (await db('payments').where({ invoice_id: first.id, attempt: 2 }).first()) ?? false, 'attempt 2 to be in flight', { intervalMs: 20 });
  await handle.signal(paymentMethodUpdatedSignal);
  await eventually(async () => (await db<InvoiceRow>('invoices').where({ id: first.id }).first())?.status === 'paid', 'the first invoice to be paid');
  await stack.advanceTo('2032-01-10T00:00:00Z', STEP);
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({ status: 'active' });

  await setCard(customer, 'pm_sandbox_declined');
  const change = await handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(pro), effective: 'immediate', requestedBy: 'test' }] });
  expect(change.invoice?.status).toBe('open');
  const proration = change.invoice!.invoiceId;
  await stack.advanceTo('2032-01-11T00:00:00Z', STEP);

  const notice = await db('outbox').where({ dedupe_key: `dunning:${proration}:2` }).first();
  expect(notice?.payload.at).toMatch(/^2032-01-12T00:00/);
  const attempts = await db('payments').where({ invoice_id: proration }).orderBy('attempt');
  const charges = await db('sandbox_gateway_charges').where({ reference: proration });
  // Before the fix: 2 attempts and 2 gateway charges by Jan 10, attempt 2 made at once after its notice for Jan 12.
  expect({ attempts: attempts.map((payment: { attempt: number }) => payment.attempt), charges: charges.length }).toEqual({ attempts: [1], charges: 1 });

  await stack.advanceTo('2032-01-12T01:00:00Z', STEP);
  expect((await db('payments').where({ invoice_id: proration })).length).toBe(2);

  await replaysEveryRun(handle.workflowId);
  await handle.terminate('test done');
}, 300_000);

test('a payment-method signal delivered after the dunning was paid does not make the next dunning retry early', async () => {
  // Timeline (2033): Jan 1 basic 10.00 declined -> past_due; Jan 2 a working card, signaled -> paid, active.
  //   Jan 2 12:00 the signal of a second change of card arrives (the API's hook picked the subscription while it was
  //   still past due) -> nothing to retry. Jan 10 the card declines, a proration is declined -> attempt 2
  //   announced for Jan 12. Nothing may be charged before Jan 12.
  const dunning = { retryAfter: ['P2D', 'P2D', 'P2D'], finalAction: 'cancel' };
  const basic = await insertPlan(db, { code: 'late-wake-basic', billing_interval: 'P1M', flat_fee: '10.00', settings: { dunning } as never });
  const pro = await insertPlan(db, { code: 'late-wake-pro', billing_interval: 'P1M', flat_fee: '7440.00', settings: { dunning } as never });
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declined' });
  const { input, workflowId } = await insertSubscription(db, customer, basic, new Date('2033-01-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });

  await stack.advanceTo('2033-01-02T00:00:00Z', STEP);
  await setCard(customer, 'pm_sandbox_ok');
  await handle.signal(paymentMethodUpdatedSignal);
  await stack.advanceTo('2033-01-02T12:00:00Z', STEP);
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({ status: 'active' });
  await handle.signal(paymentMethodUpdatedSignal);
  await stack.advanceTo('2033-01-10T00:00:00Z', STEP);

  await setCard(customer, 'pm_sandbox_declined');
  const change = await handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(pro), effective: 'immediate', requestedBy: 'test' }] });
  expect(change.invoice?.status).toBe('open');
  const proration = change.invoice!.invoiceId;
  await stack.advanceTo('2033-01-11T00:00:00Z', STEP);
  const attempts = await db('payments').where({ invoice_id: proration }).orderBy('attempt');
  // Before the fix: attempts [1, 2] by Jan 11, attempt 2 made at once after its notice for Jan 12.
  expect(attempts.map((payment: { attempt: number }) => payment.attempt)).toEqual([1]);
  await stack.advanceTo('2033-01-12T01:00:00Z', STEP);
  expect((await db('payments').where({ invoice_id: proration })).length).toBe(2);
  await replaysEveryRun(handle.workflowId);
  await handle.terminate('test done');
}, 300_000);

async function replaysEveryRun(workflowId: string): Promise<void> {
  const bundle = await workflowBundle();
  for (const [index, history] of (await runHistories(env.client, workflowId)).entries()) {
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, `stale-wake-run-${index}`);
  }
}
