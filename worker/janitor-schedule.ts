/**
 * The Temporal Schedule that runs the janitor (workflows/janitor.ts) every JANITOR_INTERVAL (default 10 minutes).
 * Every worker start ensures it: created when missing, otherwise updated in place (interval, input), never
 * duplicated; a paused schedule stays paused. See docs/operations.md, "Janitor".
 */
import { Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy, type ConnectionLike } from '@temporalio/client';
import { JANITOR_SCHEDULE_ID, JANITOR_WORKFLOW_TYPE, ReconciliationInput } from '../contract/janitor';
import { TASK_QUEUE } from '../workflows/definitions';

export const DEFAULT_JANITOR_INTERVAL = '10 minutes';

export interface JanitorScheduleOptions {
  readonly connection: ConnectionLike;
  readonly namespace?: string;
  readonly taskQueue?: string;
  /** How often the janitor runs (a duration such as "10 minutes" or "1h"). */
  readonly every?: string;
  readonly input?: ReconciliationInput;
}

/** Creates the janitor's schedule, or brings an existing one up to date; answers which it did. */
export async function ensureJanitorSchedule(options: JanitorScheduleOptions): Promise<'created' | 'updated'> {
  const client = new Client({ connection: options.connection, namespace: options.namespace ?? 'default' });
  const spec = { intervals: [{ every: options.every ?? DEFAULT_JANITOR_INTERVAL }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: JANITOR_WORKFLOW_TYPE,
    // Each run's id is this plus the scheduled time (the schedule appends it).
    workflowId: JANITOR_SCHEDULE_ID,
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    args: [options.input ?? {}],
  };
  try {
    await client.schedule.create({
      scheduleId: JANITOR_SCHEDULE_ID,
      spec,
      action,
      // One run at a time: a run still going when the next is due makes that one skip.
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
      state: { note: 'billing janitor: reconciles stalled payments, invoices and periods (docs/operations.md)' },
    });
    return 'created';
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
  }
  // Already there (another worker, an earlier start): update spec and action, keep its state (paused or not).
  await client.schedule.getHandle(JANITOR_SCHEDULE_ID).update((previous) => ({ ...previous, spec, action }));
  return 'updated';
}

/** The schedule settings from the environment: JANITOR_SCHEDULE=off leaves the schedule alone. */
export function janitorScheduleFromEnv(env: NodeJS.ProcessEnv = process.env): { enabled: boolean; every: string } {
  return { enabled: env.JANITOR_SCHEDULE !== 'off', every: env.JANITOR_INTERVAL || DEFAULT_JANITOR_INTERVAL };
}
