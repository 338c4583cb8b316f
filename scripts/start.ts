/**
 * `npm start`: the whole billing system on one machine, on embedded defaults.
 *   Postgres   embedded in .data/postgres (or DATABASE_URL)
 *   Temporal   the CLI dev server with its Web UI, state in .data/temporal.sqlite (or TEMPORAL_ADDRESS)
 *   then migrations, the demo catalog, the worker and the API. Ctrl-C stops everything cleanly and prints "stopped".
 * The log is short progress lines (scripts/start-console.ts); METERLOOP_LOG=all shows every SDK and request line.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime } from '@temporalio/worker';
import type { Server } from 'node:http';
import path from 'node:path';
import { emailChannelFromEnv, FileEmailSink } from '../notifications/email';
import { startOutboxDispatcher } from '../notifications/outbox-dispatcher';
import { createApp } from '../api/app';
import { UsageSignalCoalescer } from '../api/usage-signals';
import { createDatabase, migrateToLatest } from '../store/database';
import { startEmbeddedPostgres } from '../store/embedded-postgres';
import { createBillingWorker } from '../worker/create-worker';
import { ensureJanitorSchedule, janitorScheduleFromEnv } from '../worker/janitor-schedule';
import { SEARCH_ATTRIBUTE_REGISTRATIONS } from '../workflows/definitions';
import { seedDemoCatalog } from './seed-catalog';
import { createApiKey, hasActiveAdminKey } from '../store/api-keys';
import { startDevServer } from './temporal-servers';
import { createLogger, logLevelFromEnv } from '../logging/logger';
import { startTracing } from '../tracing';
import { createStartConsole, isDevServerBanner } from './start-console';
import { temporalConnectionFromEnv, type TemporalConnectionOptions } from '../config/temporal-connection';
import { billingTaskQueue, workflowStackTraces } from '../config/tuning';

const DATA_DIR = path.resolve(process.env.METERLOOP_DATA_DIR ?? path.join(__dirname, '..', '.data'));
const log = (message: string): void => console.log(`[start] ${message}`);
const optionalPort = (value: string | undefined): number | undefined => (value ? Number(value) : undefined);

async function main(): Promise<void> {
  // Before anything connects: tracing (only with OTEL_EXPORTER_OTLP_ENDPOINT), and the Temporal runtime with a
  // quiet logger. Ctrl-C is handled here (below), once, instead of by the runtime.
  const tracing = startTracing({ serviceName: 'meterloop' });
  const verbose = process.env.METERLOOP_LOG === 'all';
  const startConsole = createStartConsole((line) => console.log(line), { verbose });
  Runtime.install({ logger: startConsole.temporalLogger, shutdownSignals: [] });
  const stops: Array<() => Promise<unknown>> = [tracing.shutdown];
  let stopping = false;

  let databaseUrl = process.env.DATABASE_URL;
  if (databaseUrl) {
    log('Postgres: DATABASE_URL');
  } else {
    const postgres = await startEmbeddedPostgres({
      dataDir: path.join(DATA_DIR, 'postgres'),
      persistent: true,
      port: optionalPort(process.env.POSTGRES_PORT),
    });
    stops.unshift(() => postgres.stop());
    databaseUrl = postgres.connectionString;
    log(`Postgres: embedded, data in ${path.join(DATA_DIR, 'postgres')}, ${databaseUrl.replace(/:[^:@/]+@/, ':***@')}`);
  }
  const db = createDatabase(databaseUrl);
  stops.unshift(() => db.destroy());
  const applied = await migrateToLatest(db);
  log(`migrations: ${applied.length} applied`);
  const seeded = await seedDemoCatalog(db);
  log(`demo catalog: ${seeded.length ? `created ${seeded.join(', ')}` : 'already present'}`);
  // Every API call needs a key. On the first start there is none: make an admin key and show it, this once.
  const firstKey = (await hasActiveAdminKey(db, new Date())) ? undefined : (await createApiKey(db, { name: 'first admin key (npm start)', role: 'admin' })).key;

  const temporalServer = await startDevServer({
    port: optionalPort(process.env.TEMPORAL_PORT) ?? 7233,
    uiPort: optionalPort(process.env.TEMPORAL_UI_PORT) ?? 8233,
    dbFilename: path.join(DATA_DIR, 'temporal.sqlite'),
    searchAttributes: SEARCH_ATTRIBUTE_REGISTRATIONS,
    // Its banner repeats what the lines below say; while stopping, its dial errors are its own clients going down.
    log: (line) => (verbose || !(isDevServerBanner(line) || stopping) ? log(`temporal: ${line}`) : undefined),
  });
  stops.unshift(() => temporalServer.stop());

  // Our own dev server: plain gRPC. A server named by TEMPORAL_ADDRESS: everything else from TEMPORAL_* or the profile too.
  const external = temporalServer.source === 'address' ? temporalConnectionFromEnv() : undefined;
  const connectionOptions: TemporalConnectionOptions = external?.connectionOptions ?? { address: temporalServer.address };
  const namespace = external?.namespace ?? temporalServer.namespace;
  const workerConnection = await NativeConnection.connect(connectionOptions);
  stops.unshift(() => workerConnection.close());
  log(`worker: bundling the workflows (a few seconds); workflow stack traces ${workflowStackTraces()} (WORKFLOW_STACK_TRACES)`);
  const worker = await createBillingWorker({ connection: workerConnection, db, namespace, taskQueue: billingTaskQueue(), plugins: tracing.temporalPlugins });
  const janitor = janitorScheduleFromEnv();
  if (janitor.enabled) {
    const outcome = await ensureJanitorSchedule({ connection: workerConnection, namespace, taskQueue: billingTaskQueue(), every: janitor.every });
    log(`janitor: schedule billing-janitor ${outcome}, every ${janitor.every} (JANITOR_SCHEDULE=off to skip)`);
  }
  // Customer-facing events leave through the outbox: webhooks, and emails as files in .data/mail (or METERLOOP_EMAIL_*).
  const dispatcher = startOutboxDispatcher({ db, email: emailChannelFromEnv() ?? { sink: new FileEmailSink(path.join(DATA_DIR, 'mail')) } });
  stops.unshift(() => dispatcher.stop());

  const clientConnection = await Connection.connect(connectionOptions);
  stops.unshift(() => clientConnection.close());
  const temporal = new Client({ connection: clientConnection, namespace, plugins: tracing.temporalPlugins });
  const usageSignals = new UsageSignalCoalescer(db, temporal);
  usageSignals.start();
  stops.unshift(() => usageSignals.stop());
  const apiPort = optionalPort(process.env.PORT) ?? 3000;
  const server: Server = await new Promise((resolve) => {
    // One JSON line per request is for production log pipelines; here only warnings and errors (METERLOOP_LOG=all: every request).
    const apiLog = createLogger('api', { level: process.env.METERLOOP_LOG ? logLevelFromEnv(process.env.METERLOOP_LOG) : 'warn' });
    const listening = createApp({ db, temporal, usageSignals, log: apiLog }).listen(apiPort, '127.0.0.1', () => resolve(listening));
  });

  log(`API        http://127.0.0.1:${apiPort}/v1  (try GET /v1/plans with -H "authorization: Bearer $KEY")`);
  log(
    firstKey
      ? `API key    ${firstKey}  (admin; shown only now: keep it. npm run create-admin-key makes more)`
      : 'API key    npm run create-admin-key prints a new admin key (keys are shown once, at creation)',
  );
  log(`Temporal   ${temporalServer.address}${temporalServer.uiUrl ? `, Web UI ${temporalServer.uiUrl}` : ''}`);
  log('demo       subscriptions bill until canceled: POST /v1/subscriptions/<id>/cancel {"at":"now"} (README, Try it)');
  log('ready; Ctrl-C stops everything');

  // Ctrl-C (or SIGTERM): a graceful worker shutdown, once; run() returns when in-flight tasks finish. A second
  // Ctrl-C (a terminal sends one to the whole process group, npm relays another) only repeats that we are stopping.
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    log('stopping (finishing in-flight work)');
    startConsole.stopping();
    worker.shutdown();
  };
  // This process owns the shutdown order: embedded-postgres registers exit hooks that stop Postgres and exit at the
  // first signal (under the draining worker, before "stopped"); they go, and Postgres stops last, below. (tsx's own
  // relay handler is not listed by process.listeners() and stays: without it, tsx would SIGKILL this process.)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) for (const listener of process.listeners(signal)) process.removeListener(signal, listener);
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // The dev server shares the terminal's process group and stops at the same Ctrl-C: a worker that loses it while
  // draining ends with a connection error, which is the expected end here, not a failure.
  await worker.run().catch((error: unknown) => {
    if (!stopping) throw error;
  });
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections(); // keep-alive sockets of finished requests would hold close() open
  await closed;
  for (const each of stops) await each().catch((error: unknown) => (verbose ? log(`while stopping: ${String(error)}`) : undefined));
  log('stopped');
  process.exit(0);
}

main().catch((error: unknown) => {
  // Once, with what to do: the message names the cause (port in use, server not found, ...); the stack only on request.
  console.error(`[start] failed: ${error instanceof Error ? error.message : String(error)}`);
  console.error(process.env.METERLOOP_LOG === 'all' ? error : '[start] fix the cause above and run npm start again (METERLOOP_LOG=all npm start shows the details)');
  process.exit(1);
});
