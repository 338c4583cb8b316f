/**
 * A retention offer still open when the period ends (asked to cancel in the period's last days, the offer valid for
 * a week). The customer's answer, or the offer's expiry, decides what happens at that period end: declined or
 * expired, the subscription ends there as asked (no next period billed); accepted, the next period opens, discounted.
 *
 * Before, the period end handed over to the next period as if nothing were pending: the offer (not carried over)
 * was dropped, the next period billed in full, the status set back to active, and the cancellation never took
 * effect; an answer was refused (no_retention_offer). Time-skipping server and a real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { PlanSettings } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { answerRetentionOfferUpdate, cancelSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, SubscriptionState, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
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

test('an offer open at the period end: declined or expired, the subscription ends at that period end; accepted, the next period opens', async () => {
  // Timeline (2036): Jan 1 three subscriptions, 40.00 a month, each INV 40.00;
  //   Jan 28 each asks to cancel at period end -> offered 50 % off 2 periods, until Feb 4 (P7D);
  //   Feb 1 the period ends with the offers open: nothing is billed yet;
  //   Feb 2 A declines -> canceled as of Feb 1; B accepts -> the period [Feb 1, Mar 1) opens, INV 20.00;
  //   Feb 4 C's offer expires -> canceled as of Feb 1.
  const settings: PlanSettings = { retentionOffer: { percentOff: '50', periods: 2, expiresAfter: 'P7D' } };
  const plan = await insertPlan(db, { code: 'retain-boundary', billing_interval: 'P1M', flat_fee: '40.00', settings: settings as Record<string, unknown> });
  const subscribe = async () => {
    const { row, input, workflowId } = await insertSubscription(db, await insertCustomer(db), plan, new Date('2036-01-01T00:00:00Z'));
    return { subscriptionId: row.id, handle: await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] }) };
  };
  const [declines, accepts, silent] = [await subscribe(), await subscribe(), await subscribe()];
  const invoicesOf = async (subscriptionId: string) =>
    (await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy('period_start')).map((invoice) => [invoice.period_start.toISOString().slice(0, 10), Number(invoice.total).toFixed(2)]);
  const state = (handle: typeof declines.handle): Promise<SubscriptionState> => handle.query(subscriptionStateQuery);

  await stack.advanceTo('2036-01-28T00:00:00Z');
  for (const { handle } of [declines, accepts, silent]) {
    const asked = await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'moving on', requestedBy: 'test' }] });
    expect(asked).toMatchObject({ status: 'retention_offered', retentionOffer: { expiresAt: expect.stringMatching(/^2036-02-04T00:00/) } });
  }

  await stack.advanceTo('2036-02-02T00:00:00Z', 3_600_000);
  for (const { subscriptionId, handle } of [declines, accepts, silent]) {
    expect(await state(handle)).toMatchObject({ status: 'retention_offered', retentionOffer: { percentOff: '50' } });
    expect(await invoicesOf(subscriptionId)).toEqual([['2036-01-01', '40.00']]);
  }
  expect(await declines.handle.executeUpdate(answerRetentionOfferUpdate, { args: [{ accept: false, requestedBy: 'test' }] })).toEqual({ status: 'pending_cancellation' });
  expect(await accepts.handle.executeUpdate(answerRetentionOfferUpdate, { args: [{ accept: true, requestedBy: 'test' }] })).toEqual({ status: 'active' });

  await stack.advanceTo('2036-02-05T00:00:00Z', 3_600_000);
  expect((await stack.resultOf<SubscriptionState>(declines.handle)).status).toBe('canceled');
  expect((await stack.resultOf<SubscriptionState>(silent.handle)).status).toBe('canceled');
  expect(await invoicesOf(declines.subscriptionId)).toEqual([['2036-01-01', '40.00']]);
  expect(await invoicesOf(silent.subscriptionId)).toEqual([['2036-01-01', '40.00']]);
  expect((await db('customer_offers').where({ subscription_id: silent.subscriptionId }).first()).answer).toBe('expired');
  expect(await state(accepts.handle)).toMatchObject({ status: 'active', currentPeriod: { start: '2036-02-01T00:00:00.000Z', end: '2036-03-01T00:00:00.000Z' } });
  expect(await invoicesOf(accepts.subscriptionId)).toEqual([
    ['2036-01-01', '40.00'],
    ['2036-02-01', '20.00'],
  ]);

  const bundle = await workflowBundle();
  for (const { handle } of [declines, accepts, silent]) {
    for (const [index, history] of (await runHistories(env.client, handle.workflowId)).entries()) {
      await Worker.runReplayHistory({ workflowBundle: bundle }, history, `retention-boundary-${index}`);
    }
  }
  await accepts.handle.terminate('test done');
});
