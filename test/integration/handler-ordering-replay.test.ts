/**
 * A subscription must replay from its history at any moment (a worker restart, a cache eviction): what the
 * workflow did after a handler ran concurrently with the main loop must come out in the same order again.
 *
 * Found by the lifecycle simulation once it restarted workers: an immediate plan change whose proration charge is
 * declined finishes its update (status past_due) while the main loop, woken by the unpaid invoice, starts dunning
 * (a local activity, then a timer). Live, the status write resolved first and the update completed before dunning
 * began; on replay both local activities resolved in one activation, dunning's timer came before the update's
 * completion, and the worker failed the task with a nondeterminism error, forever. The main loop now lets running
 * handlers finish before it acts on what woke it.
 *
 * Time-skipping server and a real Postgres; the history of each run is replayed with Worker.runReplayHistory.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { planScheduleTerms } from '../../domain/plan-terms';
import type { PlanRow } from '../../store/catalog';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { changePlanUpdate, SUBSCRIPTION_WORKFLOW_TYPE, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { workflowBundle } from '../support/temporal';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
  await stack.advanceTo('2030-01-01T00:00:00Z', 365 * 86_400_000);
});

afterAll(async () => stack?.stop());

async function plan(code: string, flatFee: string): Promise<PlanRow> {
  return insertPlan(db, { code, name: code, billing_interval: 'P1M', flat_fee: flatFee, settings: {}, charges: [] });
}

test('a plan change whose proration charge is declined replays: the update completes before dunning starts', async () => {
  // Timeline (2030): Mar 1 basic 10.00, the first charge of each invoice declines (dunning pays it on Mar 2);
  // Mar 16 immediate change to pro 20.00: the proration invoice (5.16) declines -> past_due, dunning from there.
  const basic = await plan('basic-replay', '10.00');
  const pro = await plan('pro-replay', '20.00');
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declines_1_then_ok' });
  const { row, input, workflowId } = await insertSubscription(db, customer, basic, new Date('2030-03-01T00:00:00Z'));
  await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo('2030-03-16T00:00:00Z');
  const handle = env.client.workflow.getHandle(workflowId);
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({ status: 'active' });

  const change = await handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(pro), effective: 'immediate', requestedBy: 'test' }] });
  expect(change).toMatchObject({ effective: 'immediate', planCode: 'pro-replay', invoice: { status: 'open' } });
  await stack.advanceTo('2030-03-18T00:00:00Z', 3_600_000);

  // Dunning collected the proration invoice on its first retry.
  const proration = await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'proration' }).first();
  expect(proration?.status).toBe('paid');
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({ status: 'active', planCode: 'pro-replay' });

  // The run as recorded replays with the current code, as a restarted worker would.
  await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, await handle.fetchHistory(), 'plan-change-declined');
  await handle.terminate('test done');
});
