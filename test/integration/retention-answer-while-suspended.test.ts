/**
 * A retention offer made while the subscription is past due (asking to cancel in dunning gets one), still open when
 * dunning runs out and suspends the subscription (the plan's final action): the loop then waits for a payment, and
 * no period ends until one comes.
 *
 * Before, answering the offer while suspended was taken: accepted, the workflow moved the suspended subscription to
 * past_due (returnToStanding) and the row unblocked its usage, although the service stayed suspended; declined, it
 * became pending_cancellation at a period end that never comes while suspended (a cancellation at period end is
 * refused while suspended for that reason, 409 subscription_suspended), so the cancellation never took effect. Now
 * the answer is refused with that same 409 and nothing changes; a cancellation now still ends it.
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

test('a retention offer cannot be answered while dunning has suspended the subscription', async () => {
  // Timeline (2030): Jan 1 two subscriptions, 40.00 a month, card declined -> past due, retry on Jan 3 (the only one);
  //   Jan 2 each asks to cancel at period end -> offered 50 % off 2 periods until Jan 9;
  //   Jan 3 the retry is declined: dunning suspends the subscription (usage blocked);
  //   Jan 4 A accepts the retention offer, B declines it: both refused, both stay suspended, usage blocked.
  const settings: PlanSettings = {
    retentionOffer: { percentOff: '50', periods: 2, expiresAfter: 'P7D' },
    dunning: { retryAfter: ['P2D'], finalAction: 'suspend' },
  };
  const plan = await insertPlan(db, { code: 'retain-dunning-suspend', billing_interval: 'P1M', flat_fee: '40.00', settings: settings as Record<string, unknown> });
  const subscribe = async () => {
    const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declined' });
    const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2030-01-01T00:00:00Z'));
    return { subscriptionId: row.id, handle: await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] }) };
  };
  const [accepts, declines] = [await subscribe(), await subscribe()];

  await stack.advanceTo('2030-01-02T00:00:00Z');
  for (const { handle } of [accepts, declines]) {
    expect((await handle.query(subscriptionStateQuery)).status).toBe('past_due');
    const asked = await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'too expensive', requestedBy: 'test' }] });
    expect(asked).toMatchObject({ status: 'retention_offered' });
  }

  await stack.advanceTo('2030-01-04T00:00:00Z', 3_600_000);
  for (const { subscriptionId, handle } of [accepts, declines]) {
    expect((await handle.query(subscriptionStateQuery)).status).toBe('suspended');
    expect((await db('subscriptions').where({ id: subscriptionId }).first()).status).toBe('suspended');
  }

  const accepted = await api.call('POST', `/v1/subscriptions/${accepts.subscriptionId}/retention/accept`, {});
  const declined = await api.call('POST', `/v1/subscriptions/${declines.subscriptionId}/retention/decline`, {});
  const outcome = async ({ subscriptionId, handle }: typeof accepts, answer: typeof accepted) => {
    const state: SubscriptionState = await handle.query(subscriptionStateQuery);
    const row = await db('subscriptions').where({ id: subscriptionId }).first();
    return { answer: [answer.status, answer.json.code ?? answer.json.status, answer.type], workflow: [state.status, state.discount, state.pendingCancellation], row: [row.status, row.usage_blocked] };
  };
  const refused = [409, 'subscription_suspended', expect.stringContaining('application/problem+json')];
  expect(await outcome(accepts, accepted)).toEqual({ answer: refused, workflow: ['suspended', null, null], row: ['suspended', true] });
  expect(await outcome(declines, declined)).toEqual({ answer: refused, workflow: ['suspended', null, null], row: ['suspended', true] });

  // The way out stays open: a cancellation now ends the subscription.
  expect(await declines.handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'done', requestedBy: 'test' }] })).toMatchObject({ status: 'canceled' });
  expect((await stack.resultOf<SubscriptionState>(declines.handle)).status).toBe('canceled');
  await accepts.handle.terminate('test done');
});
