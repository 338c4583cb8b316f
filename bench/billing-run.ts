/**
 * `billing.run.<size>`: how fast one worker closes a billing period for N subscriptions at once, on the real
 * stack: the Temporal CLI dev server (in memory), a durable embedded Postgres (fsync and synchronous_commit on),
 * and the real billing worker (createBillingWorker, prebuilt bundle) alone in a child process.
 *
 * Each size gets a fresh stack. N subscriptions are created as the bulk import creates them (a row, then
 * client.workflow.start of a run already inside period 0, which the system they came from invoiced) on a plan
 * with three metered metrics, a flat fee, a credit bucket and a 1-second usage grace window; each customer has 10
 * usage events. Their period 0 began at T - interval and ends at T:
 *
 *     T - 1h ............ starts (first task: a timer) ........ T  T+1s (grace ends)
 *     |-------------------------------------------------------|--|--------------------------------- period 1
 *                                                             ^ measured: from T until the last of the N
 *                                                               period-1 invoices is finalized and paid
 *
 * At T every workflow wakes, continues as new, waits out the grace second, closes usage (claims its events),
 * writes the period invoice (period 1's fee + period 0's rated usage - credit) and charges it.
 *
 * Lines (per size: `1k`, `10k`):
 *   billing.run.<size>                       subscription-periods closed per second (N / seconds from T to the
 *                                            last payment), beside the floor: the same activity (openBillingPeriod:
 *                                            closeUsagePeriod, createPeriodInvoice, chargeInvoice) called directly
 *                                            for min(N, 2,000) other subscriptions, same data, pool size and
 *                                            concurrency, no Temporal (`billing.run.<size>.direct_db`)
 *   billing.history_events_per_period.<size> period 1's share of history in 200 of the measured runs after the
 *                                            close: from period 0's boundary timer firing to period 1's boundary
 *                                            timer started (a continued-as-new run: its history plus the previous
 *                                            run's tail)
 *   billing.worker_rss_mb.<size>             peak RSS (VmHWM) of the worker process, start to end of the close
 *                                            (SDK-default sticky cache: about 2,300 workflows on a 4 GB heap)
 *
 * Env: BENCH_BILLING_SIZES (default "1000,10000"); BENCH_BILLING_FLOOR_MAX (periods the floor closes, default
 * 2,000: its rate per period does not grow with N); BENCH_BILLING_POOL (knex pool of the worker and of the floor,
 * default 10); worker tuning: BENCH_BILLING_MAX_CACHED, BENCH_BILLING_WFT_SLOTS,
 * BENCH_BILLING_LA_SLOTS, BENCH_BILLING_ACTIVITY_SLOTS, BENCH_BILLING_WFT_POLLS, BENCH_BILLING_ACTIVITY_POLLS,
 * BENCH_BILLING_STICKY_TIMEOUT_S (SDK defaults when unset); BENCH_BILLING_DIRECT_CONCURRENCY (floor; default the pool size);
 * BENCH_BILLING_LEAD_S (seconds from seeding to T); BENCH_BILLING_TEMPORAL_DB=file (dev server state in a
 * temp SQLite file instead of memory); BENCH_BILLING_WORKER_PROFILE=<folder> (V8 CPU profile of the worker).
 */
import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { bundleWorkflowCode } from '@temporalio/worker';
import { ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createActivities } from '../activities';
import { addIntervals, parseInterval } from '../domain/periods';
import { planScheduleTerms } from '../domain/plan-terms';
import { SandboxGateway } from '../payments/sandbox-gateway';
import { RunningDevServer, startDevServer } from '../scripts/temporal-servers';
import {
  checkpoint,
  countPaidPeriodInvoices,
  insertCustomerFixtures,
  insertMetricFixtures,
  insertPlanFixtures,
  insertSubscriptionFixtures,
  paidPeriodInvoiceTimes,
  setSubscriptionsStartAt,
} from '../store/bulk-fixtures';
import { createDatabase, Database } from '../store/database';
import { startThrowawayDatabase } from '../store/throwaway-database';
import type { PlanRow } from '../store/catalog';
import { insertUsageEvents, NewUsageEvent } from '../store/usage';
import { WORKFLOWS_PATH } from '../worker/create-worker';
import { WORKER_NODE_ARGS } from '../worker/launch';
import {
  SEARCH_ATTRIBUTE_REGISTRATIONS,
  SEARCH_ATTRIBUTES,
  SUBSCRIPTION_WORKFLOW_TYPE,
  subscriptionWorkflowId,
  SubscriptionWorkflowInput,
} from '../workflows/definitions';
import type { BillingWorkerConfig, ChildMessage, ParentMessage, WorkerStats, WorkerTuning } from './billing-worker';
import { describeTreeCpu, describeTreeCpuPer, sampleTreeCpu } from './process-cpu';
import { countSql, describeSqlPer, SqlCounts } from './sql-count';
import { Benchmark, BenchResult, machineBusy, percentile, progress, sampleMachineCpu } from './report';

/** Measured runs whose histories are checked for workflow-task timeouts after the close. */
const TIMEOUT_SAMPLE = 200;
const SIZES = parseSizes(process.env.BENCH_BILLING_SIZES ?? '1000,10000');
const POOL_MAX = envInt('BENCH_BILLING_POOL', 10);
const DIRECT_CONCURRENCY = envInt('BENCH_BILLING_DIRECT_CONCURRENCY', POOL_MAX);
const EVENTS_PER_SUBSCRIPTION = 10;
/**
 * Periods the floor closes: its rate per period does not depend on how many it closes (each is the same few
 * transactions on its own rows), so at 10k it closes 2,000, not 10,000: that took minutes of the whole bench after
 * the measured close and added nothing to the figure.
 */
function floorSize(size: number): number {
  return Math.min(size, envInt('BENCH_BILLING_FLOOR_MAX', 2_000));
}
/** Concurrent client.workflow.start calls while creating subscriptions (as the import does). */
const START_CONCURRENCY = 64;

/**
 * SDK defaults unless set: they are what a deployment gets, and on this benchmark's machine no knob changed the
 * CPU a period costs, which is what bounds the rate (docs/benchmarks.md has the numbers). The sticky cache
 * defaults to about 2,300 workflows for Node's 4 GB heap: 1k fits, 10k does not (those replay run 0 at T).
 */
function workerTuning(): WorkerTuning {
  const tuning: Record<string, number | undefined> = {
    maxCachedWorkflows: optionalEnvInt('BENCH_BILLING_MAX_CACHED'),
    maxConcurrentWorkflowTaskExecutions: optionalEnvInt('BENCH_BILLING_WFT_SLOTS'),
    maxConcurrentLocalActivityExecutions: optionalEnvInt('BENCH_BILLING_LA_SLOTS'),
    maxConcurrentActivityTaskExecutions: optionalEnvInt('BENCH_BILLING_ACTIVITY_SLOTS'),
    maxConcurrentWorkflowTaskPolls: optionalEnvInt('BENCH_BILLING_WFT_POLLS'),
    maxConcurrentActivityTaskPolls: optionalEnvInt('BENCH_BILLING_ACTIVITY_POLLS'),
    stickyQueueScheduleToStartTimeout: ((seconds) => (seconds === undefined ? undefined : seconds * 1000))(optionalEnvInt('BENCH_BILLING_STICKY_TIMEOUT_S')),
  };
  return Object.fromEntries(Object.entries(tuning).filter(([, value]) => value !== undefined)) as WorkerTuning;
}

/**
 * The measured plan's interval: only its end (T) matters, and period 2 (at T + interval) must stay out of the
 * run, so it is long; subscriptions start at T - interval (backdated), so period 0 is invoiced as they start.
 */
function billingInterval(): string {
  return process.env.BENCH_BILLING_INTERVAL ?? 'PT1H';
}

/**
 * Seconds from the end of seeding to T: starting N workflows (a timer each, no invoice) and their first tasks fit
 * in it. Paced by a probe of this server's start rate right now (it varies ten-fold with the neighbours' load):
 * 2.5 x the time N bare starts would take, plus 30 s; but never faster than the worker runs first tasks, which on
 * a quiet machine is far slower than the server starts bare workflows (135/s against 935/s measured here: the
 * probe alone gave 10k a 57 s lead and its first tasks still ran at T).
 */
const FIRST_TASKS_PER_SECOND = 60;

function leadSeconds(size: number, probedStartsPerSecond: number): number {
  const perSecond = Math.min(probedStartsPerSecond / 2.5, FIRST_TASKS_PER_SECOND);
  return envInt('BENCH_BILLING_LEAD_S', Math.ceil(30 + size / perSecond));
}

/** Starts per second of an argument-less workflow on a queue nobody polls: 100 of them, 64 in flight. */
export async function probeStartRate(client: Client, taskQueue: string, count = 100): Promise<number> {
  const startedAt = Date.now();
  await forEachConcurrently(Array.from({ length: count }, (_, index) => index), START_CONCURRENCY, async () => {
    await client.workflow.start('benchEmptyWorkflow', { workflowId: `probe-${randomUUID()}`, taskQueue: `${taskQueue}-no-worker`, args: [] });
  });
  return count / ((Date.now() - startedAt) / 1000);
}

export const billingRunBenchmarks: readonly Benchmark[] = SIZES.map((size) => ({
  name: `billing.run.${sizeLabel(size)}`,
  group: 'billing',
  needsStack: false,
  run: () => runBillingPeriod(size),
}));

// ---------------------------------------------------------------------------------------------------------------

export interface BillingStack {
  readonly db: Database;
  readonly databaseUrl: string;
  readonly temporal: Client;
  readonly temporalAddress: string;
  readonly namespace: string;
  readonly taskQueue: string;
  readonly bundlePath: string;
  stop(): Promise<void>;
}

async function runBillingPeriod(size: number): Promise<BenchResult[]> {
  const label = sizeLabel(size);
  const interval = parseInterval(billingInterval());
  const tuning = workerTuning();
  progress(`billing.run.${label}: ${size} subscriptions, pool ${POOL_MAX}, tuning ${JSON.stringify(tuning)}`);
  const stack = await startBillingStack();
  let worker: WorkerProcess | undefined;
  let floor: DirectFloor | undefined;
  try {
    const catalog = await seedCatalog(stack.db, billingInterval());
    const seededAt = Date.now();
    const cohorts = await seedSubscriptions(stack.db, catalog, size);
    progress(`  seeded ${size + floorSize(size)} customers and subscriptions in ${((Date.now() - seededAt) / 1000).toFixed(1)} s`);

    // The floor's subscriptions: their period 0 ends now. Its opening invoice is not written for them: nothing in
    // closing a period reads it, and writing it would cost the run minutes at 10k.
    const floorPeriodEnd = new Date(Math.floor(Date.now() / 1000) * 1000);
    const floorPeriodStart = addIntervals(floorPeriodEnd, interval, -1);
    await setSubscriptionsStartAt(stack.db, cohorts.direct.ids, floorPeriodStart);
    await insertEvents(stack.db, cohorts.direct.customerIds, floorPeriodStart, floorPeriodEnd);
    floor = new DirectFloor(stack.databaseUrl, cohorts.direct.ids, catalog.plan, floorPeriodStart, floorPeriodEnd);

    worker = await startWorkerProcess({
      temporalAddress: stack.temporalAddress,
      namespace: stack.namespace,
      taskQueue: stack.taskQueue,
      databaseUrl: stack.databaseUrl,
      poolMax: POOL_MAX,
      bundlePath: stack.bundlePath,
      tuning,
    });
    progress(`  worker ready: RSS ${worker.ready.rssMb.toFixed(0)} MB`);

    // Every measured period 0 ends at T (whole seconds), far enough ahead for N starts and period-0 invoices.
    const startRate = await probeStartRate(stack.temporal, stack.taskQueue);
    const lead = leadSeconds(size, startRate);
    progress(`  probed ${startRate.toFixed(0)} bare starts/s: lead ${lead} s`);
    const periodEnd = new Date(Math.ceil((Date.now() + lead * 1000) / 1000) * 1000);
    const periodStart = addIntervals(periodEnd, interval, -1);
    await setSubscriptionsStartAt(stack.db, cohorts.measured.ids, periodStart);
    await insertEvents(stack.db, cohorts.measured.customerIds, periodStart, periodEnd);

    const measuredPaid = (from: Date): Promise<number> => countPaid(stack.db, { planId: catalog.plan.id, workflows: true, periodStart: from });
    const startsBegan = Date.now();
    await startWorkflows(stack, catalog.plan, cohorts.measured, periodStart);
    const startSeconds = (Date.now() - startsBegan) / 1000;
    progress(`  started ${size} workflows in ${startSeconds.toFixed(1)} s (${Math.round(size / startSeconds)}/s)`);

    await waitForIdleWorker(worker, periodEnd.getTime() - 2_000, size, lead);
    const setupStats = await worker.stats();
    progress(
      `  first tasks done ${((Date.now() - startsBegan) / 1000).toFixed(1)} s after the first start; worker RSS ${setupStats.rssMb.toFixed(0)} MB, ` +
        `${setupStats.cachedWorkflows} cached; ${((periodEnd.getTime() - Date.now()) / 1000).toFixed(1)} s to spare before T`,
    );

    // The workflows sleep until T: the floor runs meanwhile, stopping 5 s before T (the rest runs after the close).
    const floorDone = await floor.runSlice(periodEnd.getTime() - 5_000);
    if (floorDone > 0) progress(`  floor: ${floorDone} periods closed directly before T`);
    await checkpoint(stack.db); // start the measured phase from a clean WAL position

    // -- Measured: from T until the last of the N period-1 invoices is paid. --------------------------------------
    await sleepUntil(periodEnd.getTime());
    const cpuAtT = sampleTreeCpu();
    const machineAtT = sampleMachineCpu();
    const workerAtT = await worker.stats();
    const finished = await waitFor(() => measuredPaid(periodEnd).then((paid) => (paid === size ? true : undefined)), 30 * 60_000, 250);
    if (!finished) throw new Error(`not all ${size} period-1 invoices were paid within 30 minutes`);
    const detectedAt = Date.now();
    const workerAtEnd = await worker.stats();
    const cpuAtEnd = sampleTreeCpu();
    const timing = await paymentTiming(stack.db, catalog.plan.id, periodEnd);
    const seconds = timing.lastPaidMs / 1000;
    const rate = size / seconds;
    const measuredSeconds = (detectedAt - periodEnd.getTime()) / 1000;
    progress(
      `  period 1 closed for ${size} subscriptions ${seconds.toFixed(2)} s after T (the grace window ends at +1 s): ${rate.toFixed(1)}/s; ` +
        `first invoice finalized at +${(timing.firstFinalizedMs / 1000).toFixed(2)} s, half paid by +${(timing.medianPaidMs / 1000).toFixed(2)} s`,
    );
    progress(
      `  while closing: worker ${((workerAtEnd.cpuSeconds - workerAtT.cpuSeconds) / measuredSeconds).toFixed(2)} cores; ` +
        `${describeTreeCpu(cpuAtT, cpuAtEnd, measuredSeconds)}; ${machineBusy(machineAtT)}; worker RSS ${workerAtEnd.rssMb.toFixed(0)} MB (heap ${workerAtEnd.heapUsedMb.toFixed(0)} MB), peak ${workerAtEnd.peakRssMb.toFixed(0)} MB`,
    );
    // CPU per period is what sizes a deployment, and it holds up better than wall time on a busy machine.
    progress(`  ${describeTreeCpuPer(cpuAtT, cpuAtEnd, size, 'period')} (node = the worker; bench = this process polling)`);
    progress(`  worker: ${describeSqlPer(workerAtT.sql, workerAtEnd.sql, size, 'period')}`);
    const periodOneRuns = await describePeriodOneRuns(stack.temporal, cohorts.measured.ids.slice(0, TIMEOUT_SAMPLE));
    progress(`  ${periodOneRuns.text}`);

    // -- The rest of the floor. ------------------------------------------------------------------------------------
    if (floor.remaining > 0) await floor.runSlice();
    const floorResult = await floor.result();
    progress(`  floor (direct calls, concurrency ${DIRECT_CONCURRENCY}, pool ${POOL_MAX}): ${floorSize(size)} periods in ${floorResult.seconds.toFixed(2)} s: ${floorResult.rate.toFixed(1)}/s; ${floorResult.cpu}`);

    const results: BenchResult[] = [
      {
        name: `billing.run.${label}`,
        value: rate,
        unit: 'periods/s',
        baseline: { name: `billing.run.${label}.direct_db`, value: floorResult.rate },
      },
      { name: `billing.worker_rss_mb.${label}`, value: workerAtEnd.peakRssMb, unit: 'MB' },
      // What one more cached workflow costs the worker: its resident set with the measured runs cached (the close
      // done, the worker quiet) minus the same process before any workflow ran, per cached run.
      { name: `billing.worker_kb_per_cached_workflow.${label}`, value: ((workerAtEnd.rssMb - worker.ready.rssMb) * 1024) / Math.max(1, workerAtEnd.cachedWorkflows), unit: 'KB' },
    ];
    progress(`  worker: ${workerAtEnd.cachedWorkflows} workflows cached, RSS ${workerAtEnd.rssMb.toFixed(0)} MB (${worker.ready.rssMb.toFixed(0)} MB before any workflow)`);
    results.push({ name: `billing.history_events_per_period.${label}`, value: periodOneRuns.meanEvents, unit: 'events' });
    return results;
  } finally {
    await worker?.stop().catch((error: unknown) => progress(`worker stop failed: ${String(error)}`));
    await floor?.destroy();
    await stack.stop();
  }
}

/**
 * Waits until the worker has run the started workflows' first tasks: its CPU use stays under 5 % for two seconds
 * (the tasks only set a timer, so a quiet worker has none left). A backlog still running at T would overlap the
 * measured close, so that fails the run with the lead to use instead.
 */
export async function waitForIdleWorker(worker: WorkerProcess, deadline: number, size: number, lead = 0): Promise<void> {
  const since = Date.now();
  let quiet = 0;
  let before = await worker.stats();
  while (quiet < 2) {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const now = await worker.stats();
    quiet = now.cpuSeconds - before.cpuSeconds < 0.05 ? quiet + 1 : 0;
    before = now;
    if (Date.now() > deadline) {
      throw new Error(`the worker was still busy with ${size} first tasks at T; run with BENCH_BILLING_LEAD_S=${Math.ceil(lead * 1.5)} or more`);
    }
  }
  progress(`  worker idle ${((Date.now() - since) / 1000).toFixed(1)} s after the last start`);
}

// ---------------------------------------------------------------------------------------------------------------
// Stack: Postgres, Temporal dev server, client, workflow bundle
// ---------------------------------------------------------------------------------------------------------------

let bundlePath: Promise<string> | undefined;

/** The workflow bundle, built once per bench process and written to a file the worker child loads. */
function prebuiltBundle(): Promise<string> {
  bundlePath ??= (async () => {
    const startedAt = Date.now();
    const noop = (): void => undefined;
    const bundle = await bundleWorkflowCode({
      workflowsPath: WORKFLOWS_PATH,
      logger: { trace: noop, debug: noop, info: noop, warn: noop, error: (message) => progress(`bundle: ${message}`), log: noop },
    });
    const folder = mkdtempSync(path.join(os.tmpdir(), 'meterloop-bundle-'));
    process.once('exit', () => rmSync(folder, { recursive: true, force: true }));
    const file = path.join(folder, 'workflows.js');
    writeFileSync(file, bundle.code);
    progress(`  workflow bundle built in ${((Date.now() - startedAt) / 1000).toFixed(1)} s (${(bundle.code.length / 1024).toFixed(0)} KiB)`);
    return file;
  })();
  return bundlePath;
}

export async function startBillingStack(): Promise<BillingStack> {
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) await step().catch((error: unknown) => progress(`cleanup failed: ${String(error)}`));
  };
  try {
    const temporalFile = process.env.BENCH_BILLING_TEMPORAL_DB === 'file' ? path.join(temporalStateFolder(cleanups), 'temporal.sqlite') : undefined;
    const [database, devServer, bundle] = await Promise.all([
      startThrowawayDatabase({ tempPrefix: 'meterloop-billing-bench-', durable: true, namePrefix: 'meterloop_billing_bench', poolMax: 20 }).then((started) => {
        cleanups.push(() => started.stop());
        return started;
      }),
      startDevServer({
        ui: false,
        searchAttributes: SEARCH_ATTRIBUTE_REGISTRATIONS,
        dbFilename: temporalFile,
        log: (line) => {
          if (!line.startsWith('dev server: ')) progress(`  ${line}`);
        },
      }).then((server: RunningDevServer) => {
        cleanups.push(() => server.stop());
        return server;
      }),
      prebuiltBundle(),
    ]);
    const { db, url: databaseUrl } = database;
    const connection = await Connection.connect({ address: devServer.address });
    cleanups.push(() => connection.close());
    progress(`  stack: Postgres ${database.description}, Temporal dev server ${devServer.address} (${temporalFile ? 'SQLite file' : 'in memory'}, ${devServer.source})`);
    return {
      db,
      databaseUrl,
      temporal: new Client({ connection, namespace: devServer.namespace }),
      temporalAddress: devServer.address,
      namespace: devServer.namespace,
      // Own queue: with TEMPORAL_ADDRESS pointing at a shared server, no other worker takes our tasks.
      taskQueue: `billing-bench-${randomUUID().slice(0, 8)}`,
      bundlePath: bundle,
      stop: cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** A temp folder for the dev server's SQLite file (BENCH_BILLING_TEMPORAL_DB=file), removed at cleanup. */
function temporalStateFolder(cleanups: (() => Promise<void>)[]): string {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'meterloop-billing-bench-'));
  cleanups.push(async () => rmSync(folder, { recursive: true, force: true }));
  return folder;
}

// ---------------------------------------------------------------------------------------------------------------
// Data: catalog, customers, subscriptions, usage
// ---------------------------------------------------------------------------------------------------------------

interface Catalog {
  readonly plan: PlanRow;
}

async function seedCatalog(db: Database, interval: string): Promise<Catalog> {
  await insertMetricFixtures(db, [
    { code: 'tokens', name: 'LLM tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens' },
    { code: 'requests', name: 'LLM requests', event_type: 'llm.request', aggregation: 'count', property: null },
    { code: 'gpu_seconds', name: 'GPU seconds', event_type: 'gpu.job', aggregation: 'sum', property: 'seconds' },
  ]);
  const planRow = (code: string, billingInterval: string) => ({
      code,
      version: 1,
      name: 'Bench metered',
      currency: 'USD',
      billing_interval: billingInterval,
      trial_period: null,
      flat_fee: '20.00',
      charges: [
        {
          metricCode: 'tokens',
          includedUnits: '1000',
          price: { model: 'graduated', tiers: [{ upTo: '10000', unitPrice: '0.0005' }, { upTo: null, unitPrice: '0.0002' }] },
        },
        { metricCode: 'requests', price: { model: 'per_unit', unitPrice: '0.01' } },
        { metricCode: 'gpu_seconds', price: { model: 'package', packageSize: '60', packagePrice: '0.50' } },
      ],
      settings: { usageGracePeriod: 'PT1S', creditBucket: '1.00' },
  });
  const [plan] = await insertPlanFixtures(db, [planRow('bench-metered', interval)]);
  return { plan };
}

interface Cohort {
  readonly ids: string[];
  readonly customerIds: string[];
}

interface Cohorts {
  /** N subscriptions driven by workflows: the measured close. */
  readonly measured: Cohort;
  /** N subscriptions driven by direct activity calls: the floor. */
  readonly direct: Cohort;
}

async function seedSubscriptions(db: Database, catalog: Catalog, size: number): Promise<Cohorts> {
  const cohorts: Cohorts = { measured: { ids: [], customerIds: [] }, direct: { ids: [], customerIds: [] } };
  const sizes = { measured: size, direct: floorSize(size) };
  for (const name of ['measured', 'direct'] as const) {
    for (let offset = 0; offset < sizes[name]; offset += 1_000) {
      const count = Math.min(1_000, sizes[name] - offset);
      const customers = await insertCustomerFixtures(
        db,
        Array.from({ length: count }, (_, index) => ({
          external_id: `bench-${name}-${offset + index}`,
          name: `Bench ${name} ${offset + index}`,
          currency: 'USD',
          payment_method: 'pm_sandbox_ok',
        })),
      );
      const rows = customers.map(({ id: customerId }) => {
        const id = randomUUID();
        return {
          id,
          customer_id: customerId,
          plan_id: catalog.plan.id,
          status: name === 'direct' ? 'scheduled' : 'active', // the workflow-driven ones start as imported, active
          workflow_id: name === 'direct' ? `direct:${id}` : subscriptionWorkflowId(id),
          start_at: new Date(), // set to the cohort's start once T is chosen
        };
      });
      await insertSubscriptionFixtures(db, rows);
      cohorts[name].ids.push(...rows.map((row) => row.id));
      cohorts[name].customerIds.push(...rows.map((row) => row.customer_id));
    }
  }
  return cohorts;
}

/** 10 events per customer inside period 0: 7 LLM requests (tokens, requests) and 3 GPU jobs (GPU seconds). */
async function insertEvents(db: Database, customerIds: readonly string[], periodStart: Date, periodEnd: Date): Promise<void> {
  const step = (periodEnd.getTime() - periodStart.getTime()) / (EVENTS_PER_SUBSCRIPTION + 1);
  const events: NewUsageEvent[] = customerIds.flatMap((customerId, customer) =>
    Array.from({ length: EVENTS_PER_SUBSCRIPTION }, (_, index): NewUsageEvent => {
      const occurredAt = new Date(periodStart.getTime() + Math.round(step * (index + 1)));
      return index < 7
        ? { customerId, eventId: `e-${customer}-${index}`, eventType: 'llm.request', occurredAt, properties: { tokens: 500 + ((customer * 7 + index) % 1500), model: 'large' } }
        : { customerId, eventId: `e-${customer}-${index}`, eventType: 'gpu.job', occurredAt, properties: { seconds: 30 + ((customer + index) % 90) } };
    }),
  );
  const batches: NewUsageEvent[][] = [];
  for (let start = 0; start < events.length; start += 1_000) batches.push(events.slice(start, start + 1_000));
  await forEachConcurrently(batches, 4, async (batch) => {
    await insertUsageEvents(db, batch);
  });
}

/**
 * As the bulk import does (api/subscription-import.ts): the workflow `subscription:<id>` starts as a run already
 * inside period 0 (invoiced elsewhere), so its first task only sets the period-end timer. Period 0 being invoiced
 * here instead (a start backdated by one period) cost the 10k run 6 minutes of setup, none of it measured.
 */
async function startWorkflows(stack: BillingStack, plan: PlanRow, cohort: Cohort, periodStart: Date): Promise<void> {
  const terms = planScheduleTerms(plan);
  const periodEnd = addIntervals(periodStart, parseInterval(plan.billing_interval), 1);
  await forEachConcurrently(
    cohort.ids.map((id, index) => ({ id, customerId: cohort.customerIds[index] })),
    START_CONCURRENCY,
    async ({ id, customerId }) => {
      const input: SubscriptionWorkflowInput = {
        subscriptionId: id,
        customerId,
        plan: terms,
        startAt: periodStart.toISOString(),
        carried: {
          status: 'active',
          billingAnchor: periodStart.toISOString(),
          periodIndex: 0,
          periodOpened: true,
          usageOpenSince: periodStart.toISOString(),
          usagePlanId: plan.id,
          pendingCancellation: null,
          scheduledChange: null,
          discount: null,
          timeline: [],
        },
      };
      await stack.temporal.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, {
        workflowId: subscriptionWorkflowId(id),
        taskQueue: stack.taskQueue,
        args: [input],
        typedSearchAttributes: [
          { key: SEARCH_ATTRIBUTES.customerId, value: customerId },
          { key: SEARCH_ATTRIBUTES.planCode, value: plan.code },
          { key: SEARCH_ATTRIBUTES.status, value: 'active' },
          { key: SEARCH_ATTRIBUTES.pastDue, value: false },
          { key: SEARCH_ATTRIBUTES.periodEnd, value: periodEnd },
        ],
      });
    },
  );
}

/** Paid period invoices starting at `periodStart`, of workflow-driven or of directly billed subscriptions. */
async function countPaid(db: Database, of: { planId: string; workflows: boolean; periodStart: Date }): Promise<number> {
  return countPaidPeriodInvoices(db, of);
}

/** Milliseconds after T, from the rows themselves (Postgres and this process share the machine's clock). */
async function paymentTiming(db: Database, planId: string, periodEnd: Date): Promise<{ firstFinalizedMs: number; medianPaidMs: number; lastPaidMs: number }> {
  // Paid invoices have both times set.
  const rows = (await paidPeriodInvoiceTimes(db, { planId, workflows: true, periodStart: periodEnd })) as { finalized_at: Date; paid_at: Date }[];
  const after = (instant: Date): number => instant.getTime() - periodEnd.getTime();
  const paid = Float64Array.from(rows.map((row) => after(row.paid_at))).sort();
  return {
    firstFinalizedMs: Math.min(...rows.map((row) => after(row.finalized_at))),
    medianPaidMs: percentile(paid, 50),
    lastPaidMs: paid[paid.length - 1],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The floor: openBillingPeriod (closeUsagePeriod, createPeriodInvoice, chargeInvoice) called directly, no Temporal
// ---------------------------------------------------------------------------------------------------------------

/**
 * The floor for the N "direct" subscriptions, whose period 0 ended at their own instant `periodEnd` (chosen
 * before the measured cohort's T, so their setup stays out of the measured cohort's lead). It runs in slices:
 * before T while the workflows sleep, and whatever is left after the measured close; its rate is periods over
 * the summed time of its slices. Its own pool, of the worker's size.
 */
class DirectFloor {
  private readonly db: Database;
  private readonly activities: ReturnType<typeof createActivities>;
  private readonly sql: () => SqlCounts;
  private next = 0;
  private elapsedNs = 0n;
  private cpuSeconds = new Map<string, number>();
  readonly machineBusy: string[] = [];

  constructor(
    private readonly databaseUrl: string,
    private readonly subscriptionIds: readonly string[],
    private readonly plan: PlanRow,
    private readonly periodStart: Date,
    private readonly periodEnd: Date,
  ) {
    this.db = createDatabase(databaseUrl, POOL_MAX);
    this.sql = countSql(this.db);
    this.activities = createActivities({ db: this.db, gateway: new SandboxGateway(this.db) });
  }

  get remaining(): number {
    return this.subscriptionIds.length - this.next;
  }

  /** Closes period 0 for subscriptions until all are done or `stopAtMs` passes (lanes finish the one in hand). */
  async runSlice(stopAtMs = Infinity): Promise<number> {
    const usagePeriod = { start: this.periodStart.toISOString(), end: this.periodEnd.toISOString() };
    const nextPeriod = { start: this.periodEnd.toISOString(), end: addIntervals(this.periodEnd, parseInterval(this.plan.billing_interval), 1).toISOString() };
    const before = this.next;
    const cpu = sampleTreeCpu();
    const machine = sampleMachineCpu();
    const startedAt = process.hrtime.bigint();
    const lane = async (): Promise<void> => {
      while (this.next < this.subscriptionIds.length && Date.now() < stopAtMs) {
        const subscriptionId = this.subscriptionIds[this.next++];
        // The activity the workflow runs (close usage, invoice, first charge), called directly.
        await this.activities.openBillingPeriod({
          closeUsage: { subscriptionId, periodStart: usagePeriod.start, periodEnd: usagePeriod.end, planId: this.plan.id },
          invoice: {
            subscriptionId,
            kind: 'period',
            flatFeePeriod: nextPeriod,
            flatFeePlanId: this.plan.id,
            usagePeriod,
            usagePlanId: this.plan.id,
            discountPercentOff: null,
          },
        });
      }
    };
    await Promise.all(Array.from({ length: DIRECT_CONCURRENCY }, lane));
    this.elapsedNs += process.hrtime.bigint() - startedAt;
    const after = sampleTreeCpu();
    for (const [program, seconds] of after) this.cpuSeconds.set(program, (this.cpuSeconds.get(program) ?? 0) + seconds - (cpu.get(program) ?? 0));
    this.machineBusy.push(machineBusy(machine));
    return this.next - before;
  }

  async result(): Promise<{ seconds: number; rate: number; cpu: string }> {
    const seconds = Number(this.elapsedNs) / 1e9;
    const count = this.subscriptionIds.length;
    const sql = describeSqlPer({ statements: 0, transactions: 0 }, this.sql(), count, 'period');
    const paid = await countPaid(this.db, { planId: this.plan.id, workflows: false, periodStart: this.periodEnd });
    if (paid !== count) throw new Error(`the floor paid ${paid} of ${count} invoices`);
    const none = new Map<string, number>();
    const cpu = `${describeTreeCpu(none, this.cpuSeconds, seconds)}; ${this.machineBusy.join(' / ')}; ${describeTreeCpuPer(none, this.cpuSeconds, count, 'period')}; ${sql}`;
    return { seconds, rate: count / seconds, cpu };
  }

  destroy(): Promise<void> {
    return this.db.destroy();
  }
}

/**
 * A sample of the measured runs after the close (period 1 open, waiting for its end): period 1's share of
 * history; how many had a workflow task time out (a sticky task left waiting past stickyQueueScheduleToStartTimeout,
 * worker/create-worker.ts, is timed out and scheduled again on the shared queue, which costs the server and the
 * worker a task and 2 history events more); and, for each way period 1 opened (a continue-as-new at T, or in the
 * same run), how many woke before the grace window ended and slept it out (a second timer and workflow task).
 */
async function describePeriodOneRuns(client: Client, subscriptionIds: readonly string[]): Promise<{ text: string; meanEvents: number }> {
  let timedOut = 0;
  const opened = { continuedAsNew: { runs: 0, slept: 0, events: 0, tasks: 0 }, sameRun: { runs: 0, slept: 0, events: 0, tasks: 0 } };
  await forEachConcurrently(subscriptionIds, 10, async (id) => {
    const history = await client.workflow.getHandle(subscriptionWorkflowId(id)).fetchHistory();
    const timeouts = history.events?.filter((event) => event.workflowTaskTimedOutEventAttributes).length ?? 0;
    if (timeouts > 0) timedOut += 1;
    const share = await periodOneShare(client, subscriptionWorkflowId(id), history.events ?? []);
    const way = share.continuedAsNew ? opened.continuedAsNew : opened.sameRun;
    way.runs += 1;
    way.events += share.events; // after the await: `way.events += await ...` would add to a stale total
    way.tasks += share.tasks;
    if (share.timersStarted > 1) way.slept += 1; // period 1's end timer, plus the grace wait's
  });
  const meanEvents = (opened.continuedAsNew.events + opened.sameRun.events) / subscriptionIds.length;
  const describe = (way: typeof opened.sameRun) =>
    `${way.runs} (${way.slept} slept out the grace window; ${(way.events / Math.max(1, way.runs)).toFixed(1)} events and ${(way.tasks / Math.max(1, way.runs)).toFixed(2)} workflow tasks each)`;
  const ways = `period 1 opened in a new run: ${describe(opened.continuedAsNew)}, in the same run: ${describe(opened.sameRun)}`;
  return {
    text: `${timedOut} of ${subscriptionIds.length} sampled runs had a workflow task time out; ${meanEvents.toFixed(1)} events each since period 0's end (waiting for period 1's); ${ways}`,
    meanEvents,
  };
}

/**
 * Period 1's share of history: from period 0's boundary timer firing to period 1's boundary timer started. In the
 * run the bench started (inside period 0, one timer), everything from its first TimerFired; in a run continued as
 * new at T, its whole history plus the previous run's from its last TimerFired (the firing, a workflow task,
 * continued-as-new). With the timers started in that share.
 */
async function periodOneShare(
  client: Client,
  workflowId: string,
  events: readonly temporal.api.history.v1.IHistoryEvent[],
): Promise<{ events: number; tasks: number; timersStarted: number; continuedAsNew: boolean }> {
  const previousRunId = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
  type Share = readonly temporal.api.history.v1.IHistoryEvent[];
  const timersIn = (share: Share) => share.filter((event) => event.timerStartedEventAttributes).length;
  const tasksIn = (share: Share) => share.filter((event) => event.workflowTaskCompletedEventAttributes).length;
  if (!previousRunId) {
    const share = events.slice(Math.max(0, events.findIndex((event) => event.timerFiredEventAttributes)));
    return { events: share.length, tasks: tasksIn(share), timersStarted: timersIn(share), continuedAsNew: false };
  }
  const previous = (await client.workflow.getHandle(workflowId, previousRunId).fetchHistory()).events ?? [];
  const lastFired = previous.map((event) => Boolean(event.timerFiredEventAttributes)).lastIndexOf(true);
  const tail = previous.slice(lastFired);
  return { events: events.length + tail.length, tasks: tasksIn(events) + tasksIn(tail), timersStarted: timersIn(events), continuedAsNew: true };
}

// ---------------------------------------------------------------------------------------------------------------
// The worker child process
// ---------------------------------------------------------------------------------------------------------------

export interface WorkerProcess {
  readonly ready: WorkerStats;
  stats(): Promise<WorkerStats>;
  stop(): Promise<WorkerStats>;
}

export async function startWorkerProcess(config: BillingWorkerConfig): Promise<WorkerProcess> {
  // stdout of the child goes to our stderr: stdout carries only JSON lines.
  // BENCH_BILLING_WORKER_PROFILE=<folder>: a V8 CPU profile of the worker's whole life (bench/profile-summary.ts).
  const profileDir = process.env.BENCH_BILLING_WORKER_PROFILE;
  // Launched as production launches a worker (worker/launch.ts: workflow stack traces off unless WORKFLOW_STACK_TRACES=on).
  const execArgv = [...WORKER_NODE_ARGS, ...process.execArgv, ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(profileDir)] : [])];
  const child: ChildProcess = fork(path.join(__dirname, 'billing-worker.ts'), [], { stdio: ['ignore', 2, 2, 'ipc'], execArgv });
  const waiting: ((message: ChildMessage) => void)[] = [];
  let failure: Error | undefined;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.on('message', (message: ChildMessage) => {
    if (message.type === 'error') failure = new Error(`billing worker failed: ${message.error}`);
    waiting.shift()?.(message);
  });
  child.once('exit', (code) => {
    failure ??= new Error(`billing worker exited with code ${code}`);
    for (const resolve of waiting.splice(0)) resolve({ type: 'error', error: failure.message });
  });
  const ask = (message: ParentMessage | undefined): Promise<WorkerStats> =>
    new Promise<ChildMessage>((resolve) => {
      if (failure) return resolve({ type: 'error', error: failure.message });
      waiting.push(resolve);
      if (message) child.send(message);
    }).then((answer) => {
      if (answer.type === 'error') throw new Error(answer.error);
      return answer.stats;
    });
  const readyAnswer = ask({ type: 'start', config });
  let ready: WorkerStats;
  try {
    ready = await readyAnswer;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  let stopped: Promise<WorkerStats> | undefined;
  return {
    ready,
    stats: () => ask({ type: 'stats' }),
    stop: () =>
      (stopped ??= (async () => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        try {
          return await ask({ type: 'stop' });
        } finally {
          await exited;
          clearTimeout(timer);
        }
      })()),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------------

export async function forEachConcurrently<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
}

/** Polls `probe` until it answers, or `timeoutMs` passes (then undefined). */
async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 500): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, Math.min(everyMs, Math.max(0, deadline - Date.now()))));
  }
}

function sleepUntil(instantMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, instantMs - Date.now())));
}

function sizeLabel(size: number): string {
  return size % 1_000 === 0 ? `${size / 1_000}k` : String(size);
}

function parseSizes(text: string): number[] {
  const sizes = text.split(',').map((part) => Number(part.trim()));
  if (sizes.length === 0 || sizes.some((size) => !Number.isSafeInteger(size) || size < 1)) {
    throw new Error(`BENCH_BILLING_SIZES must be a comma-separated list of positive integers, got ${text}`);
  }
  return sizes;
}

function envInt(name: string, fallback: number): number {
  return optionalEnvInt(name) ?? fallback;
}

function optionalEnvInt(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed <= 0) throw new Error(`${name} must be a positive integer, got ${value}`);
  return parsed;
}
