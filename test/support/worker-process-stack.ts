/**
 * What a test needs whose billing worker runs in its own process (./worker-process.ts), launched as production
 * launches a worker (worker/launch.ts): a dev server, a test database, a client connection and the prebuilt
 * workflow bundle the worker process loads.
 */
import { Connection } from '@temporalio/client';
import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { RunningDevServer, startDevServer } from '../../scripts/temporal-servers';
import type { Database } from '../../store/database';
import { WORKER_NODE_ARGS } from '../../worker/launch';
import { SEARCH_ATTRIBUTE_REGISTRATIONS } from '../../workflows/definitions';
import { createTestDatabaseWithUrl } from './database';
import { workflowBundleFile } from './temporal';

export interface WorkerProcess {
  readonly process: ChildProcess;
  /** Resolves once the worker polls; rejects if it exits first. */
  readonly ready: Promise<void>;
}

export interface WorkerProcessStack {
  readonly db: Database;
  readonly devServer: RunningDevServer;
  readonly connection: Connection;
  /** A new worker process; `env` adds to (or overrides) the test's environment. */
  startWorker(env?: Record<string, string>): WorkerProcess;
  /** Kills every worker it started, then closes the connection and stops the server and the database. */
  stop(): Promise<void>;
}

export async function startWorkerProcessStack(): Promise<WorkerProcessStack> {
  const [{ db, url: databaseUrl }, devServer] = await Promise.all([
    createTestDatabaseWithUrl(),
    startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_REGISTRATIONS, log: () => undefined }),
  ]);
  const connection = await Connection.connect({ address: devServer.address });
  const bundlePath = await workflowBundleFile();
  const workers: ChildProcess[] = [];
  return {
    db,
    devServer,
    connection,
    startWorker(env = {}) {
      // One process (node with tsx's loader, not the tsx CLI, which would leave its child running after a SIGKILL).
      const child = spawn(process.execPath, [...WORKER_NODE_ARGS, '--import', 'tsx', path.join(__dirname, 'worker-process.ts')], {
        env: { ...process.env, ...env, TEMPORAL_ADDRESS: devServer.address, DATABASE_URL: databaseUrl, WORKFLOW_BUNDLE_PATH: bundlePath },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      workers.push(child);
      const ready = new Promise<void>((resolve, reject) => {
        // Read all of stdout, so a chatty worker never blocks on a full pipe.
        child.stdout!.on('data', (chunk: Buffer) => {
          if (chunk.toString('utf8').includes('worker running')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`worker exited with code ${code}`)));
      });
      ready.catch(() => undefined); // a test that does not wait for it (a kill before it polls) must not fail on it
      return { process: child, ready };
    },
    async stop() {
      for (const worker of workers) worker.kill('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 200));
      await connection.close();
      await devServer.stop();
      await db.destroy();
    },
  };
}
