/**
 * Workflow stack traces (docs/operations.md, "Tuning"): a worker launched as production launches it (the workflow
 * threads' preload, worker/launch.ts) runs subscriptions without collecting their stack traces, so Temporal UI's
 * Stack Trace tab says they are not enabled, while the workflow itself answers its own query; with
 * WORKFLOW_STACK_TRACES=on the tab shows where the workflow waits, in our source.
 */
import { Client, Connection } from '@temporalio/client';
import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { planScheduleTerms } from '../../domain/plan-terms';
import { RunningDevServer, startDevServer } from '../../scripts/temporal-servers';
import type { Database } from '../../store/database';
import { WORKER_NODE_ARGS } from '../../worker/launch';
import { SEARCH_ATTRIBUTE_REGISTRATIONS, SUBSCRIPTION_WORKFLOW_TYPE, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { createTestDatabaseWithUrl } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { workflowBundleFile } from '../support/temporal';

let db: Database;
let databaseUrl: string;
let devServer: RunningDevServer;
let connection: Connection;
let bundlePath: string;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  let created: { db: Database; url: string };
  [created, devServer] = await Promise.all([createTestDatabaseWithUrl(), startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_REGISTRATIONS, log: () => undefined })]);
  ({ db, url: databaseUrl } = created);
  connection = await Connection.connect({ address: devServer.address });
  bundlePath = await workflowBundleFile();
}, 180_000);

afterAll(async () => {
  for (const worker of workers) worker.kill('SIGKILL');
  await connection?.close();
  await devServer?.stop();
  await db?.destroy();
});

/** A worker process launched as production launches one; resolves once it polls. */
async function startWorker(env: Record<string, string>): Promise<ChildProcess> {
  const worker = spawn(process.execPath, [...WORKER_NODE_ARGS, '--import', 'tsx', path.join(__dirname, '../support/worker-process.ts')], {
    env: { ...process.env, ...env, TEMPORAL_ADDRESS: devServer.address, DATABASE_URL: databaseUrl, WORKFLOW_BUNDLE_PATH: bundlePath },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  workers.push(worker);
  await new Promise<void>((resolve, reject) => {
    worker.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString('utf8').includes('worker running')) resolve();
    });
    worker.once('exit', (code) => reject(new Error(`worker exited with code ${code}`)));
  });
  return worker;
}

/** A new subscription's workflow, started and past its first workflow task (its own query answers). */
async function startSubscription(code: string) {
  const plan = await insertPlan(db, { code, name: code, billing_interval: 'P1M', flat_fee: '10.00' });
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_ok' });
  const { input, workflowId } = await insertSubscription(db, customer, plan, new Date(Date.now() + 3_600_000));
  const handle = await new Client({ connection }).workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [{ ...input, plan: planScheduleTerms(plan) }] });
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
