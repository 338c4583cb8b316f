/**
 * Workflow stack traces (docs/operations.md, "Tuning"): a worker launched as production launches it (the workflow
 * threads' preload, worker/launch.ts) runs subscriptions without collecting their stack traces, so Temporal UI's
 * Stack Trace tab says they are not enabled, while the workflow itself answers its own query; with
 * WORKFLOW_STACK_TRACES=on the tab shows where the workflow waits, in our source.
 */
import { Client } from '@temporalio/client';
import { planScheduleTerms } from '../../domain/plan-terms';
import { SUBSCRIPTION_WORKFLOW_TYPE, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { startWorkerProcessStack, type WorkerProcessStack } from '../support/worker-process-stack';

let stack: WorkerProcessStack;

beforeAll(async () => {
  stack = await startWorkerProcessStack();
}, 180_000);

afterAll(() => stack?.stop());

/** A worker process launched as production launches one, once it polls. */
async function startWorker(env: Record<string, string>) {
  const worker = stack.startWorker(env);
  await worker.ready;
  return worker.process;
}

/** A new subscription's workflow, started and past its first workflow task (its own query answers). */
async function startSubscription(code: string) {
  const plan = await insertPlan(stack.db, { code, name: code, billing_interval: 'P1M', flat_fee: '10.00' });
  const customer = await insertCustomer(stack.db, { payment_method: 'pm_sandbox_ok' });
  const { input, workflowId } = await insertSubscription(stack.db, customer, plan, new Date(Date.now() + 3_600_000));
  const handle = await new Client({ connection: stack.connection }).workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [{ ...input, plan: planScheduleTerms(plan) }] });
  expect((await handle.query(subscriptionStateQuery)).subscriptionId).toBe(input.subscriptionId);
  return handle;
}

test('a worker launched with the preload collects no workflow stack traces; WORKFLOW_STACK_TRACES=on brings them back', async () => {
  const withoutTraces = await startWorker({});
  const quiet = await startSubscription('stack-traces-off');
  await expect(quiet.query('__stack_trace')).rejects.toThrow(/Workflow stack traces are not enabled on this worker/);
  withoutTraces.kill('SIGKILL');

  await startWorker({ WORKFLOW_STACK_TRACES: 'on' });
  const traced = await startSubscription('stack-traces-on');
  // Source-mapped: where the subscription waits, in our workflow code.
  expect(await traced.query<string>('__stack_trace')).toMatch(/workflows\/subscription\//);
}, 120_000);
