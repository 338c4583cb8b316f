/**
 * A retention offer made while the subscription is past due (asking to cancel in dunning gets one), still open when
 * dunning gives up and ends the subscription. The workflow then waits for its win-back offer, its handlers still
 * registered, the retention offer still in its state.
 *
 * Before, accepting (or declining) that offer after the end was answered 200 `active`: the workflow moved the
 * canceled subscription back to `active` (accepted) or `pending_cancellation` (declined), the row followed, its
 * cancellation time and usage end were cleared, and ingestion would have accepted usage again that no invoice bills
 * (the workflow had ended its billing): a subscription shown active and billed nothing. Now the answer is refused,
 * `409 no_retention_offer` (problem+json), and nothing changes. Time-skipping server and a real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import type { PlanSettings } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import { cancelSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, SubscriptionState, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
  const key = await createTestApiKey(db, 'admin');
  api = await serve(createApp({ db, temporal: env.client }), { headers: key.headers });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

test('a retention offer still open when dunning ends the subscription can no longer be answered', async () => {
  // Timeline (2029): Jan 1 two subscriptions, 40.00 a month, card declined -> past due, retry on Jan 3 (the only one);
  //   Jan 2 each asks to cancel at period end -> offered 50 % off 2 periods until Jan 9;
  //   Jan 3 the retry is declined: dunning gives up -> canceled (a win-back offer would go out on Feb 2);
  //   Jan 4 A accepts the retention offer, B declines it: both refused, both stay canceled.
  const settings: PlanSettings = {
    retentionOffer: { percentOff: '50', periods: 2, expiresAfter: 'P7D' },
    winBackOffer: { sendAfter: 'P30D', expiresAfter: 'P7D' },
    dunning: { retryAfter: ['P2D'], finalAction: 'cancel' },
  };
  const plan = await insertPlan(db, { code: 'retain-dunning-end', billing_interval: 'P1M', flat_fee: '40.00', settings: settings as Record<string, unknown> });
  const subscribe = async () => {
    const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declined' });
    const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2029-01-01T00:00:00Z'));
    return { subscriptionId: row.id, handle: await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] }) };
  };
  const [accepts, declines] = [await subscribe(), await subscribe()];

  await stack.advanceTo('2029-01-02T00:00:00Z');
  for (const { handle } of [accepts, declines]) {
    expect((await handle.query(subscriptionStateQuery)).status).toBe('past_due');
    const asked = await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'too expensive', requestedBy: 'test' }] });
    expect(asked).toMatchObject({ status: 'retention_offered' });
  }

  await stack.advanceTo('2029-01-04T00:00:00Z', 3_600_000);
  for (const { subscriptionId, handle } of [accepts, declines]) {
    expect((await handle.query(subscriptionStateQuery)).status).toBe('canceled');
    expect((await db('subscriptions').where({ id: subscriptionId }).first()).status).toBe('canceled');
  }

  const accepted = await api.call('POST', `/v1/subscriptions/${accepts.subscriptionId}/retention/accept`, {});
  const declined = await api.call('POST', `/v1/subscriptions/${declines.subscriptionId}/retention/decline`, {});
  const outcome = async ({ subscriptionId, handle }: typeof accepts, answer: typeof accepted) => {
    const state: SubscriptionState = await handle.query(subscriptionStateQuery);
    const row = await db('subscriptions').where({ id: subscriptionId }).first();
    // Canceled as dunning left it: its cancellation time stays, so ingestion keeps refusing usage after the end.
    return { answer: [answer.status, answer.json.code ?? answer.json.status, answer.type], workflow: [state.status, state.discount], row: [row.status, row.canceled_at !== null] };
  };
  const refused = [409, 'no_retention_offer', expect.stringContaining('application/problem+json')];
  expect(await outcome(accepts, accepted)).toEqual({ answer: refused, workflow: ['canceled', null], row: ['canceled', true] });
  expect(await outcome(declines, declined)).toEqual({ answer: refused, workflow: ['canceled', null], row: ['canceled', true] });
  for (const { handle } of [accepts, declines]) await handle.terminate('test done');
});
