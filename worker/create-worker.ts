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
    | 'tuner'
  >;
}

export const WORKFLOWS_PATH = require.resolve('../workflows');

/** The billing worker: subscription workflows plus every activity, wired to Postgres and the sandbox gateway. */
export async function createBillingWorker(options: BillingWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    activities: createActivities({ db: options.db, gateway: new SandboxGateway(options.db) }),
    ...options.tuning,
    ...(options.plugins?.length ? { plugins: options.plugins } : {}),
  });
}
