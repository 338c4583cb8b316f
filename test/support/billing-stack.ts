import { Client, WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import type { Database } from '../../store/database';
import { createBillingWorker } from '../../worker/create-worker';
import { createTestDatabase } from './database';
import { createTimeSkippingEnvironment, workflowBundle } from './temporal';

/**
 * What most workflow tests run on: a real time-skipping Temporal server, a fresh migrated Postgres database and
 * a billing worker polling it. `advanceTo` moves server time; `resultOf` reads a finished workflow's result.
 */
export interface TimeSkippingStack {
  readonly env: TestWorkflowEnvironment;
  readonly db: Database;
  /** Moves server time forward to `instant` in steps, so the workflows handle every timer on the way. */
  advanceTo(instant: string, stepMs?: number): Promise<void>;
  /** The server's current time. */
  now(): Promise<Date>;
  /**
   * The workflow's result once it has ended, advancing time a day at a time until then. The time-skipping
   * client's own result() leaves time skipping unlocked for the tests that follow, so it is avoided.
   */
  resultOf<T>(handle: WorkflowHandle): Promise<T>;
  stop(): Promise<void>;
}

export async function startTimeSkippingStack(): Promise<TimeSkippingStack> {
  const [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  const worker: Worker = await createBillingWorker({ connection: env.nativeConnection, db, workflowBundle: await workflowBundle() });
  const running = worker.run();
  const plainClient = new Client({ connection: env.connection });

  return {
    env,
    db,
    async advanceTo(instant, stepMs = 86_400_000) {
      const target = new Date(instant).getTime();
      for (;;) {
        const now = await env.currentTimeMs();
        if (now >= target) return;
        await env.sleep(Math.min(stepMs, target - now));
      }
    },
    async now() {
      return new Date(await env.currentTimeMs());
    },
    async resultOf<T>(handle: WorkflowHandle): Promise<T> {
      for (let day = 0; day < 400; day += 1) {
        if ((await handle.describe()).status.name !== 'RUNNING') break;
        await env.sleep(86_400_000);
      }
      return plainClient.workflow.getHandle(handle.workflowId).result() as Promise<T>;
    },
    async stop() {
      worker.shutdown();
      await running;
      await Promise.all([env.teardown(), db.destroy()]);
    },
  };
}
