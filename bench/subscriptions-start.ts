/**
 * `subscriptions.start`: how fast the bulk import (api/subscription-import.ts, the code path of
 * `POST /v1/subscriptions/import` and `npm run import`) turns rows into running subscription workflows, on the
 * billing benchmark's stack (Temporal dev server in memory, durable embedded Postgres, the real worker in a child).
 *
 * Lines:
 *   subscriptions.start                  rows imported per second (validated, customer/plan looked up, workflow
 *                                        started, row written), beside the baseline
 *                                        `subscriptions.start.bare_client_start`: client.workflow.start of a workflow
 *                                        without arguments, on a queue no worker polls, at the same concurrency:
 *                                        what the start RPC alone allows on this server
 *   subscriptions.start.first_tasks_done the same rows per second until the worker has run every started workflow's
 *                                        first task (it stays quiet for two seconds), no baseline
 *   subscriptions.start.rerun            the same rows imported again: every one must come back `existing`, with
 *                                        as many subscriptions stored as rows (else the benchmark fails)
 *
 * The baseline runs in two halves, before and after ours, so a neighbour's burst weighs on both sides alike.
 * Env: BENCH_START_SUBSCRIPTIONS (default 2000).
 */
import { randomUUID } from 'node:crypto';
import { DEFAULT_START_CONCURRENCY, IMPORT_BATCH_LIMIT, importSubscriptions } from '../api/subscription-import';
import { countSubscriptionsOfPlan, insertCustomerFixtures, insertPlanFixtures } from '../store/bulk-fixtures';
import { TASK_QUEUE } from '../workflows/definitions';
import { forEachConcurrently, startBillingStack, startWorkerProcess, waitForIdleWorker } from './billing-run';
import { Benchmark, BenchResult, progress } from './report';

const SIZE = Number(process.env.BENCH_START_SUBSCRIPTIONS ?? 2000);

export const subscriptionsStart: Benchmark = {
  name: 'subscriptions.start',
  group: 'subscriptions',
  needsStack: false,
  run: () => runSubscriptionsStart(SIZE),
};

async function runSubscriptionsStart(size: number): Promise<BenchResult[]> {
  progress(`subscriptions.start: ${size} rows, ${DEFAULT_START_CONCURRENCY} starts in flight`);
  const stack = await startBillingStack();
  let worker: Awaited<ReturnType<typeof startWorkerProcess>> | undefined;
  try {
    const [plan] = await insertPlanFixtures(stack.db, [
      { code: 'bench-import', version: 1, name: 'Bench import', currency: 'USD', billing_interval: 'P1M', trial_period: null, flat_fee: '20.00', charges: [], settings: {} },
    ]);
    const customers: { id: string; external_id: string }[] = [];
    for (let offset = 0; offset < size; offset += 1_000) {
      const count = Math.min(1_000, size - offset);
      customers.push(
        ...(await insertCustomerFixtures(
          stack.db,
          Array.from({ length: count }, (_, index) => ({ external_id: `bench-import-${offset + index}`, name: `Bench import ${offset + index}`, currency: 'USD', payment_method: 'pm_sandbox_ok' })),
        )),
      );
    }
    worker = await startWorkerProcess({
      temporalAddress: stack.temporalAddress,
      namespace: stack.namespace,
      taskQueue: TASK_QUEUE, // the import starts workflows on the production queue; this dev server is ours alone
      databaseUrl: stack.databaseUrl,
      poolMax: 10,
      bundlePath: stack.bundlePath,
      tuning: {},
    });

    // Rows as a migration would bring them: anchored 10 days ago on a monthly plan, in their first period.
    const anchor = new Date(Math.floor(Date.now() / 1000) * 1000 - 10 * 86_400_000).toISOString();
    const rows = customers.map((customer, index) => ({
      external_id: `legacy-${index}`,
      customer_external_id: customer.external_id,
      plan_code: plan.code,
      billing_anchor: anchor,
      current_period_start: anchor,
    }));

    const half = Math.ceil(size / 2);
    const bareBefore = await bareStarts(stack.temporal, half, `${stack.taskQueue}-no-worker`);

    /** Imports every row as the API does (in batches of its limit); how many rows came back with `status`. */
    const importAll = async (status: 'created' | 'existing'): Promise<number> => {
      let count = 0;
      for (let offset = 0; offset < rows.length; offset += IMPORT_BATCH_LIMIT) {
        const reports = await importSubscriptions({ db: stack.db, temporal: stack.temporal }, rows.slice(offset, offset + IMPORT_BATCH_LIMIT), offset);
        count += reports.filter((report) => report.status === status).length;
      }
      return count;
    };

    const startedAt = Date.now();
    const created = await importAll('created');
    const importSeconds = (Date.now() - startedAt) / 1000;
    if (created !== size) throw new Error(`expected ${size} subscriptions created, got ${created}`);
    progress(`  imported ${size} in ${importSeconds.toFixed(1)} s: ${(size / importSeconds).toFixed(0)}/s`);
    await waitForIdleWorker(worker, Date.now() + 10 * 60_000, size);
    const settledSeconds = (Date.now() - startedAt) / 1000 - 2; // minus the two quiet seconds that say "done"
    const stats = await worker.stats();
    progress(`  first tasks done ${settledSeconds.toFixed(1)} s after the first start; worker RSS ${stats.rssMb.toFixed(0)} MB, ${stats.cachedWorkflows} cached`);

    // The same file again, as an operator rerunning an interrupted import would: every row is found, nothing is
    // started or written twice.
    const rerunStartedAt = Date.now();
    const existing = await importAll('existing');
    const rerunSeconds = (Date.now() - rerunStartedAt) / 1000;
    const stored = await countSubscriptionsOfPlan(stack.db, plan.id);
    if (existing !== size || stored !== size) throw new Error(`the rerun found ${existing} of ${size} rows existing; ${stored} subscriptions stored`);
    progress(`  rerun of the same ${size} rows in ${rerunSeconds.toFixed(1)} s: all existing, ${stored} subscriptions stored`);

    const bareAfter = await bareStarts(stack.temporal, size - half, `${stack.taskQueue}-no-worker`);
    const bareRate = size / (bareBefore + bareAfter);
    progress(`  bare client starts: ${bareRate.toFixed(0)}/s (${half} in ${bareBefore.toFixed(1)} s, ${size - half} in ${bareAfter.toFixed(1)} s)`);
    return [
      { name: 'subscriptions.start', value: size / importSeconds, unit: 'subscriptions/s', baseline: { name: 'subscriptions.start.bare_client_start', value: bareRate } },
      { name: 'subscriptions.start.first_tasks_done', value: size / settledSeconds, unit: 'subscriptions/s' },
      { name: 'subscriptions.start.rerun', value: size / rerunSeconds, unit: 'rows/s (all existing, none started again)' },
    ];
  } finally {
    await worker?.stop().catch((error: unknown) => progress(`worker stop failed: ${String(error)}`));
    await stack.stop();
  }
}

/** Seconds for `count` starts of an argument-less workflow on a queue nobody polls, at the import's concurrency. */
async function bareStarts(client: Awaited<ReturnType<typeof startBillingStack>>['temporal'], count: number, taskQueue: string): Promise<number> {
  const startedAt = Date.now();
  await forEachConcurrently(Array.from({ length: count }, (_, index) => index), DEFAULT_START_CONCURRENCY, async () => {
    await client.workflow.start('benchEmptyWorkflow', { workflowId: `bare-${randomUUID()}`, taskQueue, args: [] });
  });
  return (Date.now() - startedAt) / 1000;
}
