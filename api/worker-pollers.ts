/**
 * Readiness of the billing worker, as Temporal sees it: the pollers on the billing task queue
 * (DescribeTaskQueue). A worker that has not polled for a while cannot run workflow tasks: plan changes and
 * pauses then answer 503 temporal_unavailable and subscriptions' live state is unavailable, although the API
 * itself still serves (ingestion, reads). See docs/operations.md, "Readiness".
 */
import type { Client } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { billingTaskQueue } from '../config/tuning';

export interface WorkerPollersCheck {
  readonly ok: boolean;
  /** Pollers seen on the workflow task queue within `maxAgeMs`. */
  readonly pollers: number;
  /** The most recent poll any worker made (ISO), when Temporal still remembers one. */
  readonly last_poll_at?: string;
  readonly error?: string;
  readonly duration_ms: number;
}

export interface WorkerPollersOptions {
  readonly temporal: Client;
  readonly taskQueue?: string;
  /** A poller older than this no longer counts (an idle worker re-polls about once a minute); default 90 s. */
  readonly maxAgeMs?: number;
  /** gRPC deadline of the DescribeTaskQueue call; default 1 s. */
  readonly timeoutMs?: number;
  readonly now?: () => number;
}

/** READINESS_POLLER_MAX_AGE_MS, or 90 s. */
export function pollerMaxAgeFromEnv(): number {
  const value = Number(process.env.READINESS_POLLER_MAX_AGE_MS);
  return Number.isFinite(value) && value > 0 ? value : 90_000;
}

export async function checkWorkerPollers(options: WorkerPollersOptions): Promise<WorkerPollersCheck> {
  const started = Date.now();
  const now = options.now ?? Date.now;
  const maxAgeMs = options.maxAgeMs ?? pollerMaxAgeFromEnv();
  const { connection, options: clientOptions } = options.temporal;
  try {
    const answer = await connection.withDeadline(Date.now() + (options.timeoutMs ?? 1_000), () =>
      connection.workflowService.describeTaskQueue({
        namespace: clientOptions.namespace,
        taskQueue: { name: options.taskQueue ?? billingTaskQueue(), kind: proto.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        taskQueueType: proto.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
      }),
    );
    const polls = (answer.pollers ?? []).map((poller) => optionalTsToMs(poller.lastAccessTime) ?? 0);
    const recent = polls.filter((at) => now() - at <= maxAgeMs).length;
    const latest = polls.length > 0 ? Math.max(...polls) : undefined;
    return {
      ok: recent > 0,
      pollers: recent,
      ...(latest ? { last_poll_at: new Date(latest).toISOString() } : {}),
      ...(recent > 0 ? {} : { error: `no worker polled task queue ${options.taskQueue ?? billingTaskQueue()} in the last ${Math.round(maxAgeMs / 1000)} s` }),
      duration_ms: Date.now() - started,
    };
  } catch (error) {
    return { ok: false, pollers: 0, error: (error as Error).message ?? String(error), duration_ms: Date.now() - started };
  }
}
