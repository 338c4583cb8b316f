/**
 * The Temporal Schedule that runs the janitor (workflows/janitor.ts) every JANITOR_INTERVAL (default 10 minutes).
 * Every worker start ensures it: created when missing, updated in place when its interval, queue or input differ,
 * left alone otherwise; never duplicated; a paused schedule stays paused. See docs/operations.md, "Janitor".
 */
import { Client, ScheduleAlreadyRunning, ScheduleDescription, ScheduleOverlapPolicy, type ConnectionLike } from '@temporalio/client';
import { msToNumber } from '@temporalio/common/lib/time';
import { isDeepStrictEqual } from 'node:util';
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
export async function ensureJanitorSchedule(options: JanitorScheduleOptions): Promise<'created' | 'updated' | 'unchanged'> {
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
  // Already there (another worker, an earlier start). The SDK's update writes back the whole schedule as described
  // a moment before, state included, with no conflict token: an operator's pause landing between the two calls
  // would be undone. So a worker whose settings match (every start but the one after a config change) sends no
  // update at all, and a paused schedule stays paused whatever the timing.
  const handle = client.schedule.getHandle(JANITOR_SCHEDULE_ID);
  if (sameSettings(await handle.describe(), spec.intervals[0].every, action)) return 'unchanged';
  await handle.update((previous) => ({ ...previous, spec, action }));
  return 'updated';
}

/** Whether the described schedule already runs `action` on exactly one interval of `every`, with no offset. */
function sameSettings(described: ScheduleDescription, every: string, action: { workflowType: string; taskQueue: string; args: unknown[] }): boolean {
  const [interval, ...others] = described.spec.intervals ?? [];
  if (!interval || others.length > 0 || msToNumber(interval.every) !== msToNumber(every) || msToNumber(interval.offset ?? 0) !== 0) return false;
  const current = described.action;
  return (
    current.type === 'startWorkflow' &&
    current.workflowType === action.workflowType &&
    current.taskQueue === action.taskQueue &&
    isDeepStrictEqual(current.args ?? [], action.args)
  );
}

/** The schedule settings from the environment: JANITOR_SCHEDULE=off leaves the schedule alone. */
export function janitorScheduleFromEnv(env: NodeJS.ProcessEnv = process.env): { enabled: boolean; every: string } {
  return { enabled: env.JANITOR_SCHEDULE !== 'off', every: env.JANITOR_INTERVAL || DEFAULT_JANITOR_INTERVAL };
}
