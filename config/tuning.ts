/**
 * Capacity knobs read from the environment, each with the default the code used before it was a knob
 * (docs/operations.md, "Tuning", lists them). Unset means the default; a value that cannot be right stops the
 * process at start with the variable's name, rather than running a worker with a silently different capacity.
 */
import { TASK_QUEUE } from '../workflows/definitions';

type Env = Record<string, string | undefined>;

/** Default knex pool size per process (store/database.ts). */
export const DEFAULT_DATABASE_POOL_MAX = 10;

/** Worker options the environment may set; the SDK's own defaults apply to every one left unset. */
export interface WorkerTuning {
  readonly maxCachedWorkflows?: number;
  readonly maxConcurrentWorkflowTaskExecutions?: number;
  readonly maxConcurrentActivityTaskExecutions?: number;
  readonly maxConcurrentLocalActivityExecutions?: number;
  readonly maxConcurrentWorkflowTaskPolls?: number;
  readonly maxConcurrentActivityTaskPolls?: number;
  /** Milliseconds a workflow task may wait on this worker's sticky queue (worker/create-worker.ts has the default). */
  readonly stickyQueueScheduleToStartTimeout?: number;
  /** A resource-based tuner (slots follow memory and CPU use) instead of fixed slot counts. */
  readonly tuner?: { readonly tunerOptions: { readonly targetMemoryUsage: number; readonly targetCpuUsage: number } };
}

/**
 * The task queue the API starts workflows on and the workers poll. Both sides must agree, so both read the same
 * variable; a separate queue lets two deployments share one namespace.
 */
export function billingTaskQueue(env: Env = process.env): string {
  const value = env.METERLOOP_TASK_QUEUE?.trim();
  return value ? value : TASK_QUEUE;
}

/** Postgres connections per process (knex pool max). Workers x this must stay under Postgres' max_connections. */
export function databasePoolMax(env: Env = process.env): number {
  return positiveInteger(env, 'DATABASE_POOL_MAX') ?? DEFAULT_DATABASE_POOL_MAX;
}

export function workerTuningFromEnv(env: Env = process.env): WorkerTuning {
  const workflowSlots = positiveInteger(env, 'WORKER_WORKFLOW_TASK_SLOTS');
  const activitySlots = positiveInteger(env, 'WORKER_ACTIVITY_TASK_SLOTS');
  // The Postgres activities run as local activities: each busy one holds a pool connection (DATABASE_POOL_MAX).
  const localActivitySlots = positiveInteger(env, 'WORKER_LOCAL_ACTIVITY_SLOTS');
  const targetMemory = fraction(env, 'WORKER_TUNER_TARGET_MEMORY');
  const targetCpu = fraction(env, 'WORKER_TUNER_TARGET_CPU');
  const tuning: WorkerTuning = {
    maxCachedWorkflows: nonNegativeInteger(env, 'WORKER_MAX_CACHED_WORKFLOWS'),
    maxConcurrentWorkflowTaskPolls: positiveInteger(env, 'WORKER_WORKFLOW_TASK_POLLERS'),
    maxConcurrentActivityTaskPolls: positiveInteger(env, 'WORKER_ACTIVITY_TASK_POLLERS'),
    stickyQueueScheduleToStartTimeout: secondsAsMs(positiveInteger(env, 'WORKER_STICKY_QUEUE_TIMEOUT_S')),
  };
  if (targetMemory !== undefined || targetCpu !== undefined) {
    // The SDK refuses a tuner together with fixed slot counts; say so before it does, in our variables' names.
    if (workflowSlots !== undefined || activitySlots !== undefined || localActivitySlots !== undefined) {
      throw new Error('WORKER_TUNER_TARGET_MEMORY/CPU (resource-based slots) and WORKER_*_SLOTS (fixed slots) exclude each other: set one kind');
    }
    if (targetMemory === undefined || targetCpu === undefined) throw new Error('the resource-based tuner needs both WORKER_TUNER_TARGET_MEMORY and WORKER_TUNER_TARGET_CPU (fractions, e.g. 0.8)');
    return withoutUndefined({ ...tuning, tuner: { tunerOptions: { targetMemoryUsage: targetMemory, targetCpuUsage: targetCpu } } });
  }
  return withoutUndefined({ ...tuning, maxConcurrentWorkflowTaskExecutions: workflowSlots, maxConcurrentActivityTaskExecutions: activitySlots, maxConcurrentLocalActivityExecutions: localActivitySlots });
}

/**
 * Whether this worker's workflow threads collect stack traces for the `__stack_trace` query (Temporal UI's "Stack
 * Trace" tab): off unless WORKFLOW_STACK_TRACES=on, where the worker was launched with the workflow threads'
 * preload (worker/workflow-thread-preload.cjs says why). Launched without it, the SDK's default holds: on, and the
 * returned text says the preload is missing, so the start-up log shows a launch that lost the flag.
 */
export function workflowStackTraces(env: Env = process.env, preloaded = workflowThreadPreloadLoaded()): string {
  const raw = env.WORKFLOW_STACK_TRACES;
  if (raw !== undefined && raw !== '' && raw !== 'on' && raw !== 'off') throw new Error(`WORKFLOW_STACK_TRACES must be "on" or "off", got ${JSON.stringify(raw)}`);
  if (!preloaded) return 'on (SDK default: the worker was launched without worker/workflow-thread-preload.cjs)';
  return raw === 'on' ? 'on' : 'off';
}

/** Set by worker/workflow-thread-preload.cjs in the main thread of a process it was preloaded into. */
function workflowThreadPreloadLoaded(): boolean {
  return (globalThis as Record<symbol, unknown>)[Symbol.for('meterloop.workflowThreadPreload')] === true;
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function integer(env: Env, name: string, min: number): number | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`${name} must be an integer of at least ${min}, got ${JSON.stringify(env[name])}`);
  return value;
}

const positiveInteger = (env: Env, name: string): number | undefined => integer(env, name, 1);
const secondsAsMs = (seconds: number | undefined): number | undefined => (seconds === undefined ? undefined : seconds * 1000);
const nonNegativeInteger = (env: Env, name: string): number | undefined => integer(env, name, 0);

function fraction(env: Env, name: string): number | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  const value = Number(raw);
  if (!(value > 0 && value <= 1)) throw new Error(`${name} must be a fraction in (0, 1], got ${JSON.stringify(env[name])}`);
  return value;
}
