import type { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import type { Database } from '../../store/database';
import { createBillingWorker } from '../../worker/create-worker';
import { createTestApiKey } from './api-keys';
import { createTestDatabase } from './database';
import { serve, TestHttp } from './http';
import { createTimeSkippingEnvironment, workflowBundle } from './temporal';

/**
 * The whole system in one test process, for tests that drive billing through the HTTP API: a time-skipping
 * Temporal server, a fresh Postgres, a billing worker, and the API (admin key) whose clock is the server's (it
 * judges event timestamps by it), moved forward by `skipTo`.
 */
export interface ApiStack {
  readonly env: TestWorkflowEnvironment;
  readonly db: Database;
  readonly api: TestHttp;
  /** Moves server time (and the API's clock with it) forward to `instant`; never back. */
  skipTo(instant: string): Promise<void>;
  /**
   * The API's clock: the server time as of the last skip or API call. Time also moves while a test awaits a
   * workflow's result (the server skips ahead on its own), so the API reads the server's time before each call.
   */
  now(): Date;
  stop(): Promise<void>;
}

/** How a test sets the stack up: `apiTemporal` wraps the client the API asks the workflows with (a hook that holds an answer). */
export interface ApiStackOptions {
  readonly apiTemporal?: (client: Client) => Client;
}

export async function startApiStack(options: ApiStackOptions = {}): Promise<ApiStack> {
  const [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  const worker = await createBillingWorker({ connection: env.nativeConnection, db, workflowBundle: await workflowBundle() });
  const running = worker.run();
  let serverNow = new Date();
  const served = await serve(createApp({ db, temporal: options.apiTemporal?.(env.client) ?? env.client, now: () => serverNow }), { headers: (await createTestApiKey(db, 'admin')).headers });
  // Before, the API's clock stayed at the last skipTo: after awaiting a workflow's result (which skips server time)
  // a test stamped events and start dates in the server's past, and read a later period than it meant to.
  const api: TestHttp = {
    baseUrl: served.baseUrl,
    close: () => served.close(),
    async call(...args) {
      serverNow = new Date(await env.currentTimeMs());
      return served.call(...args);
    },
  };
  return {
    env,
    db,
    api,
    async skipTo(instant) {
      const target = new Date(instant).getTime();
      const now = await env.currentTimeMs();
      if (target > now) await env.sleep(target - now);
      serverNow = new Date(await env.currentTimeMs());
    },
    now: () => serverNow,
    async stop() {
      await api.close();
      worker.shutdown();
      await running;
      await Promise.all([env.teardown(), db.destroy()]);
    },
  };
}

/**
 * The stack for a whole test file: started before its first test, stopped after its last. Its parts are read
 * through the returned object once started (inside tests and hooks), instead of each file keeping its own copies.
 */
export function useApiStack(options: ApiStackOptions = {}): ApiStack {
  let stack: ApiStack | undefined;
  beforeAll(async () => {
    stack = await startApiStack(options);
  });
  afterAll(async () => stack?.stop());
  const started = (): ApiStack => {
    if (!stack) throw new Error('the API stack starts in beforeAll: read it inside a test');
    return stack;
  };
  return {
    get env() {
      return started().env;
    },
    get db() {
      return started().db;
    },
    get api() {
      return started().api;
    },
    skipTo: (instant) => started().skipTo(instant),
    now: () => started().now(),
    stop: () => started().stop(),
  };
}
