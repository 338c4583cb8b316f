/**
 * The subscription's recorded trial end outlives its first run. A run after the first boundary (rolled over or
 * continued as new) no longer knows the trial (workflows/subscription/state.ts sets `trialEnd` only on the first
 * run), so its status records carry `trialEnd: null`; the row mirror used to write that null over the recorded
 * trial end at the first status change after the boundary (store/subscriptions.ts `mirrorSubscriptionStatus`),
 * and GET subscription, exports and anything reading trial_end lost it. Real Postgres, time-skipping Temporal.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import type { Database } from '../../store/database';
import { createBillingWorker } from '../../worker/create-worker';
import { cancelSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, SubscriptionState, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let worker: Worker;
let workerRun: Promise<void>;

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  worker = await createBillingWorker({ connection: env.nativeConnection, db, workflowBundle: await workflowBundle() });
  workerRun = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await workerRun;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

/** Skips server time forward to an instant (time only moves forward). */
async function skipTo(instant: string): Promise<void> {
  const now = await env.currentTimeMs();
  const target = new Date(instant).getTime();
  if (target > now) await env.sleep(target - now);
}

async function advanceUntil(handle: WorkflowHandle, predicate: (state: SubscriptionState) => boolean, step = '6 hours'): Promise<SubscriptionState> {
  for (let i = 0; i < 2000; i += 1) {
    const state = await handle.query(subscriptionStateQuery);
    if (predicate(state)) return state;
    await env.sleep(step);
  }
  throw new Error(`the workflow never reached the expected state: ${JSON.stringify(await handle.query(subscriptionStateQuery))}`);
}

test('a status change after the subscription continued as new keeps the recorded trial end', async () => {
  // Timeline (UTC), daily plan, trial P3D:
  //   2031-03-01  start, trialing (row: trial_end 2031-03-04)
  //   2031-03-04  trial ends -> active, period 0
  //   2031-03-05, 03-06  periods 1 and 2: at least one of these boundaries continues as new, both leave run 1
  //   (in period 2) cancel at period end -> pending_cancellation: the row must still say trial_end 2031-03-04
  //   2031-03-07  canceled: likewise
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: `trial-kept-${customer.id}`, billing_interval: 'P1D', trial_period: 'P3D', flat_fee: '1' });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2031-03-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  const trialEnd = new Date('2031-03-04T00:00:00.000Z');

  await skipTo('2031-03-02T00:00:00Z');
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({ status: 'trialing' });
  await advanceUntil(handle, (live) => live.currentPeriod?.index === 2 && live.lastInvoice?.status === 'paid', '3 hours');
  expect(await db('subscriptions').where({ id: row.id }).first('status', 'trial_end')).toEqual({ status: 'active', trial_end: trialEnd });
  expect((await handle.describe()).runId).not.toBe(handle.firstExecutionRunId); // it did continue as new
  expect((await handle.query(subscriptionStateQuery)).trialEnd).toBe(trialEnd.toISOString()); // the live state too (was null)

  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'trial end kept', requestedBy: 'test' }] });
  const pending = await db('subscriptions').where({ id: row.id }).first('status', 'trial_end');
  expect({ status: pending.status, trial_end: pending.trial_end?.toISOString() ?? null }).toEqual({ status: 'pending_cancellation', trial_end: trialEnd.toISOString() });

  await advanceUntil(handle, (live) => live.status === 'canceled', '3 hours');
  await handle.result();
  const ended = await db('subscriptions').where({ id: row.id }).first('status', 'trial_end');
  expect({ status: ended.status, trial_end: ended.trial_end?.toISOString() ?? null }).toEqual({ status: 'canceled', trial_end: trialEnd.toISOString() });
});
