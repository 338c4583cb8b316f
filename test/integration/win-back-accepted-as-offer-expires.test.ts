/**
 * A win-back acceptance that arrives as the offer expires: the update is admitted (the offer is still open) and
 * its handler records the answer, while the offer's expiry timer fires. The main loop's wait for the acceptance
 * ends on the timer, before the handler has set `winBackAccepted` (it does so after its recording activity), so the
 * run records the expiry and ends canceled, while the customer is answered `active` and the offer stays `accepted`.
 *
 * Expected: an acceptance admitted before the expiry restarts the subscription (answered active, and active).
 * Reproduced by holding the offer's row lock so the handler's recording waits past the expiry (real time runs on the
 * time-skipping server while nothing waits for a result). Time-skipping server and a real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { PlanSettings } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import { answerWinBackOfferUpdate, cancelSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, SubscriptionState, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
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

// Before the fix: answered active, offer accepted, subscription canceled (patch win-back-answer-in-flight-wins).
test('a win-back acceptance admitted before the expiry restarts the subscription, or is not answered active', async () => {
  // Timeline (2035): Jan 1 15.00; Jan 5 cancel now; Jan 6 win-back offer, valid 20 s; accepted 3 s in, its recording
  //   held for 30 s (past the expiry).
  const settings: PlanSettings = { winBackOffer: { sendAfter: 'P1D', expiresAfter: 'PT20S' } };
  const plan = await insertPlan(db, { code: 'winback-race', billing_interval: 'P1M', flat_fee: '15.00', settings: settings as Record<string, unknown> });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2035-01-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo('2035-01-05T00:00:00Z');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'leaving', requestedBy: 'test' }] });
  await stack.advanceTo('2035-01-06T00:00:00Z');
  await stack.advanceTo('2035-01-06T00:00:03Z', 1000);
  await eventually(async () => db('customer_offers').where({ subscription_id: row.id, kind: 'win_back' }).first(), 'the win-back offer');

  const trx = await db.transaction();
  await trx('customer_offers').where({ subscription_id: row.id, kind: 'win_back' }).forUpdate().select('id');
  const answer = handle.executeUpdate(answerWinBackOfferUpdate, { args: [{ accept: true, requestedBy: 'test' }] });
  await new Promise((resolve) => setTimeout(resolve, 30_000));
  await trx.commit();
  const answered = await answer;

  await stack.advanceTo('2035-01-07T00:00:00Z');
  const offer = await db('customer_offers').where({ subscription_id: row.id, kind: 'win_back' }).first();
  let status: string;
  try {
    status = (await handle.query(subscriptionStateQuery)).status;
  } catch {
    status = (await stack.resultOf<SubscriptionState>(handle)).status;
  }
  const rowStatus = (await db('subscriptions').where({ id: row.id }).first()).status;
  // Answered active, the subscription must be active (restarted); else the answer must not say active.
  expect({ answered: answered.status, offer: offer.answer, status, rowStatus }).toEqual({ answered: 'active', offer: 'accepted', status: 'active', rowStatus: 'active' });
  await handle.terminate('test done').catch(() => undefined);
}, 180_000);
