/**
 * What a pricing simulation runs on: a throwaway Postgres database (a new database on a server: DATABASE_URL's, or
 * an embedded one in a temp folder, see startThrowawayServer in store/throwaway-database.ts), a time-skipping Temporal server with the billing search
 * attributes, and the real billing worker (the subscription workflow and every activity). stop() removes it all.
 */
import { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker';
import type { Database } from '../../store/database';
import { createThrowawayDatabase } from '../../store/throwaway-database';
import { createBillingWorker, WORKFLOWS_PATH } from '../../worker/create-worker';
import { SEARCH_ATTRIBUTE_REGISTRATIONS } from '../../workflows/definitions';
import { registerSearchAttributes, resolveTimeSkippingServer } from '../temporal-servers';

export interface SimulationStackOptions {
  /** The Postgres server to create the throwaway database on (startThrowawayServer gives one of its own). */
  readonly postgresServerUrl: string;
  /** A prebuilt workflow bundle (tests and benchmarks build it once); bundled from source when absent. */
  readonly workflowBundle?: WorkflowBundle;
  readonly log?: (line: string) => void;
}

export interface SimulationStack {
  readonly db: Database;
  readonly env: TestWorkflowEnvironment;
  /**
   * A plain client on the time-skipping server. (The environment's own client unlocks time skipping while it
   * waits for results, which would let time run away from the simulation's day-by-day steps.)
   */
  readonly client: Client;
  /** Where Postgres and Temporal came from, for the record. */
  readonly description: string;
  stop(): Promise<void>;
}

export async function startSimulationStack(options: SimulationStackOptions): Promise<SimulationStack> {
  const log = options.log ?? (() => undefined);
  const cleanups: (() => Promise<unknown>)[] = [];
  const stop = async (): Promise<void> => {
    for (const step of cleanups.splice(0).reverse()) {
      await step().catch((error: unknown) => log(`cleanup failed: ${String(error)}`));
    }
  };
  try {
    const [database, temporalServer, bundle] = await Promise.all([
      throwawayDatabase(options.postgresServerUrl, cleanups),
      startTimeSkippingServer(log, cleanups),
      options.workflowBundle ?? bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietBundlerLogger }),
    ]);
    const { db, description: postgres } = database;
    const { env, description: temporalDescription } = temporalServer;
    const worker = await createBillingWorker({ connection: env.nativeConnection, db, workflowBundle: bundle });
    const running = worker.run();
    cleanups.push(async () => {
      worker.shutdown();
      await running;
    });
    const client = new Client({ connection: env.connection });
    return { db, env, client, description: `Postgres: ${postgres}; Temporal: ${temporalDescription}`, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function throwawayDatabase(serverUrl: string, cleanups: (() => Promise<unknown>)[]): Promise<{ db: Database; description: string }> {
  const { db, name, drop } = await createThrowawayDatabase(serverUrl, { namePrefix: 'simulation' });
  cleanups.push(drop);
  return { db, description: `database ${name} (dropped afterwards)` };
}

async function startTimeSkippingServer(
  log: (line: string) => void,
  cleanups: (() => Promise<unknown>)[],
): Promise<{ env: TestWorkflowEnvironment; description: string }> {
  let resolved = '';
  const server = await resolveTimeSkippingServer({ log: (line) => (resolved = line) });
  log(resolved);
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: server.executable } });
  cleanups.push(() => env.teardown());
  await registerSearchAttributes(env.connection, SEARCH_ATTRIBUTE_REGISTRATIONS);
  return { env, description: resolved || 'time-skipping test server' };
}

const noop = (): void => undefined;
const quietBundlerLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop };
