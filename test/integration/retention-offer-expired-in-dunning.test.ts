/**
 * A retention offer made while the subscription is past due expires while dunning is still waiting for its next
 * attempt. The main loop records an expiry only between dunning runs, so the offer stays in the workflow's state
 * after its expiry; the customer was told it expires then.
 *
 * Before, an answer after the expiry was taken: accepted, the discount (50 % off two periods) was given for an offer
 * that had expired. Now `409 no_retention_offer`, as when the expiry has been recorded (the update's validator).
 * Time-skipping server and a real Postgres.
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

test('a retention offer that expired during dunning can no longer be accepted', async () => {
  // Timeline (2033): Jan 1 40.00 a month, card declined -> past due, next attempt Jan 11 (P10D);
  //   Jan 2 asks to cancel at period end -> offered 50 % off 2 periods until Jan 9;
  //   Jan 10 (offer expired, dunning still waiting) accepts: refused, no discount.
  const settings: PlanSettings = {
    retentionOffer: { percentOff: '50', periods: 2, expiresAfter: 'P7D' },
    dunning: { retryAfter: ['P10D'], finalAction: 'cancel' },
  };
  const plan = await insertPlan(db, { code: 'retain-expired-in-dunning', billing_interval: 'P1M', flat_fee: '40.00', settings: settings as Record<string, unknown> });
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declined' });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2033-01-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });

  await stack.advanceTo('2033-01-02T00:00:00Z');
  expect((await handle.query(subscriptionStateQuery)).status).toBe('past_due');
  const asked = await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'too expensive', requestedBy: 'test' }] });
  expect(asked).toMatchObject({ status: 'retention_offered', retentionOffer: { expiresAt: expect.stringMatching(/^2033-01-09T00:00/) } });

  await stack.advanceTo('2033-01-10T00:00:00Z');
  const accepted = await api.call('POST', `/v1/subscriptions/${row.id}/retention/accept`, {});
  const state: SubscriptionState = await handle.query(subscriptionStateQuery);
  expect({ answer: [accepted.status, accepted.json.code ?? accepted.json.status], discount: state.discount }).toEqual({ answer: [409, 'no_retention_offer'], discount: null });
  await handle.terminate('test done');
});
