/**
 * Child-process entry of the billing-run benchmark (bench/billing-run.ts): the real billing worker
 * (createBillingWorker, prebuilt workflow bundle, its own knex pool) alone in a process, so its peak RSS is the
 * worker's and nobody else's. Started by `fork`, driven over IPC:
 *   parent -> { type: 'start', config }   child -> { type: 'ready', stats }
 *   parent -> { type: 'stats' }           child -> { type: 'stats', stats }
 *   parent -> { type: 'stop' }            child -> { type: 'stopped', stats }, then exits
 */
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { readFileSync } from 'node:fs';
import { workflowStackTraces } from '../config/tuning';
import { createDatabase } from '../store/database';
import { type BillingWorkerOptions, createBillingWorker } from '../worker/create-worker';
import { progress } from './report';
import { countSql, SqlCounts } from './sql-count';

/** The worker knobs the benchmark may set: what createBillingWorker's `tuning` takes. */
export type WorkerTuning = NonNullable<BillingWorkerOptions['tuning']>;

export interface BillingWorkerConfig {
  readonly temporalAddress: string;
  readonly namespace: string;
  readonly taskQueue: string;
  readonly databaseUrl: string;
  readonly poolMax: number;
  /** The workflow bundle built once by the parent (bundleWorkflowCode), written to a file. */
  readonly bundlePath: string;
  readonly tuning: WorkerTuning;
}

export interface WorkerStats {
  /** Resident set now, and its peak since the process started (Linux VmHWM; sampled elsewhere). */
  readonly rssMb: number;
  readonly peakRssMb: number;
  readonly heapUsedMb: number;
  /** CPU (user + system) of this process since it started, in seconds. */
  readonly cpuSeconds: number;
  /** Workflow runs in the worker's sticky cache now (0 before it runs). */
  readonly cachedWorkflows: number;
  /** SQL statements and transactions the worker's activities sent since it started (bench/sql-count.ts). */
  readonly sql: SqlCounts;
}

export type ParentMessage = { type: 'start'; config: BillingWorkerConfig } | { type: 'stats' } | { type: 'stop' };
export type ChildMessage =
  | { type: 'ready'; stats: WorkerStats }
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'stopped'; stats: WorkerStats }
  | { type: 'error'; error: string };

let sampledPeakRss = 0;

function peakRssBytes(): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // not Linux: fall back to sampling
  }
  return sampledPeakRss;
}

let cachedWorkflows = (): number => 0;
let sqlCounts = (): SqlCounts => ({ statements: 0, transactions: 0 });

function stats(): WorkerStats {
  const memory = process.memoryUsage();
  sampledPeakRss = Math.max(sampledPeakRss, memory.rss);
  const cpu = process.cpuUsage();
  return {
    rssMb: memory.rss / 2 ** 20,
    peakRssMb: Math.max(peakRssBytes(), memory.rss) / 2 ** 20,
    heapUsedMb: memory.heapUsed / 2 ** 20,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    cachedWorkflows: cachedWorkflows(),
    sql: sqlCounts(),
  };
}

function send(message: ChildMessage): void {
  process.send!(message);
}

async function main(config: BillingWorkerConfig): Promise<void> {
  // The SDK's warnings (slow tasks, evictions) reach stderr with the other progress lines; no INFO chatter.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  // As production runs it (bench/billing-run.ts launches this process with the workflow threads' preload).
  progress(`billing worker: workflow stack traces ${workflowStackTraces()}`);
  const sampler = setInterval(() => stats(), 200);
  const db = createDatabase(config.databaseUrl, config.poolMax);
  sqlCounts = countSql(db);
  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  const worker = await createBillingWorker({
    connection,
    db,
    namespace: config.namespace,
    taskQueue: config.taskQueue,
    workflowBundle: { codePath: config.bundlePath },
    tuning: config.tuning,
  });
  cachedWorkflows = () => worker.getStatus().numCachedWorkflows;
  const running = worker.run();
  send({ type: 'ready', stats: stats() });

  process.on('message', (message: ParentMessage) => {
    if (message.type === 'stats') send({ type: 'stats', stats: stats() });
    if (message.type === 'stop') worker.shutdown();
  });
  await running;
  clearInterval(sampler);
  await connection.close();
  await db.destroy();
  const final = stats();
  await new Promise<void>((resolve) => process.send!({ type: 'stopped', stats: final } satisfies ChildMessage, () => resolve()));
  process.disconnect();
}

process.once('message', (message: ParentMessage) => {
  if (message.type !== 'start') return;
  // Check the file is there before the SDK reports a less helpful error.
  readFileSync(message.config.bundlePath);
  main(message.config).catch((error: unknown) => {
    send({ type: 'error', error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    process.exitCode = 1;
    process.disconnect();
  });
});
