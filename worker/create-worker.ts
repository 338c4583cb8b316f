import { NativeConnection, Worker, WorkerOptions, WorkerPlugin } from '@temporalio/worker';
import { createActivities } from '../activities';
import { SandboxGateway } from '../payments/sandbox-gateway';
import type { Database } from '../store/database';
import { TASK_QUEUE } from '../workflows/definitions';

export interface BillingWorkerOptions {
  readonly connection: NativeConnection;
  readonly db: Database;
  readonly namespace?: string;
  readonly taskQueue?: string;
  /** A prebuilt bundle (tests and benchmarks build it once); bundled from source when omitted. */
  readonly workflowBundle?: WorkerOptions['workflowBundle'];
  /** Worker plugins, e.g. tracing's OpenTelemetry plugin (tracing/); a prebuilt bundle must have been built with the same. */
  readonly plugins?: WorkerPlugin[];
  readonly tuning?: Pick<
    WorkerOptions,
    | 'maxCachedWorkflows'
    | 'maxConcurrentActivityTaskExecutions'
    | 'maxConcurrentWorkflowTaskExecutions'
    | 'maxConcurrentLocalActivityExecutions'
    | 'maxConcurrentWorkflowTaskPolls'
    | 'maxConcurrentActivityTaskPolls'
    | 'stickyQueueScheduleToStartTimeout'
    | 'tuner'
  >;
}

export const WORKFLOWS_PATH = require.resolve('../workflows');

/**
 * How long a workflow task may wait on this worker's sticky queue before the server moves it to the shared queue
 * (SDK default 10 s). When many periods end at once, a worker's sticky queue holds more than 10 s of work; each
 * task that times out costs the server a second dispatch, the run two more history events and a worker a replay
 * (docs/benchmarks.md, "Two periods per run": 56-90 of 200 runs timed out at 1k). A minute still hands a crashed
 * worker's workflows to the others within a minute. `WORKER_STICKY_QUEUE_TIMEOUT_S` sets it.
 */
export const STICKY_QUEUE_TIMEOUT_MS = 60_000;

/** The billing worker: subscription workflows plus every activity, wired to Postgres and the sandbox gateway. */
export async function createBillingWorker(options: BillingWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    activities: createActivities({ db: options.db, gateway: new SandboxGateway(options.db) }),
    stickyQueueScheduleToStartTimeout: STICKY_QUEUE_TIMEOUT_MS,
    ...options.tuning,
    ...(options.plugins?.length ? { plugins: options.plugins } : {}),
  });
}
