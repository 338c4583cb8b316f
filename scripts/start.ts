/**
 * `npm start`: the whole billing system on one machine, on embedded defaults.
 *   Postgres   embedded in .data/postgres (or DATABASE_URL)
 *   Temporal   the CLI dev server with its Web UI, state in .data/temporal.sqlite (or TEMPORAL_ADDRESS)
 *   then migrations, the demo catalog, the worker and the API. Ctrl-C stops everything cleanly.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
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
import { temporalConnectionFromEnv, type TemporalConnectionOptions } from '../config/temporal-connection';
import { billingTaskQueue } from '../config/tuning';

const DATA_DIR = path.resolve(process.env.METERLOOP_DATA_DIR ?? path.join(__dirname, '..', '.data'));
const log = (message: string): void => console.log(`[start] ${message}`);
const optionalPort = (value: string | undefined): number | undefined => (value ? Number(value) : undefined);

async function main(): Promise<void> {
  const stops: Array<() => Promise<unknown>> = [];

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
    log: (line) => log(`temporal: ${line}`),
  });
  stops.unshift(() => temporalServer.stop());

  // Our own dev server: plain gRPC. A server named by TEMPORAL_ADDRESS: everything else from TEMPORAL_* or the profile too.
  const external = temporalServer.source === 'address' ? temporalConnectionFromEnv() : undefined;
  const connectionOptions: TemporalConnectionOptions = external?.connectionOptions ?? { address: temporalServer.address };
  const namespace = external?.namespace ?? temporalServer.namespace;
  const workerConnection = await NativeConnection.connect(connectionOptions);
  stops.unshift(() => workerConnection.close());
  const worker = await createBillingWorker({ connection: workerConnection, db, namespace, taskQueue: billingTaskQueue() });
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
  const temporal = new Client({ connection: clientConnection, namespace });
  const usageSignals = new UsageSignalCoalescer(db, temporal);
  usageSignals.start();
  stops.unshift(() => usageSignals.stop());
  const apiPort = optionalPort(process.env.PORT) ?? 3000;
  const server: Server = await new Promise((resolve) => {
    const listening = createApp({ db, temporal, usageSignals }).listen(apiPort, '127.0.0.1', () => resolve(listening));
  });

  log(`API        http://127.0.0.1:${apiPort}/v1  (try GET /v1/plans with -H "authorization: Bearer $KEY")`);
  log(
    firstKey
      ? `API key    ${firstKey}  (admin; shown only now: keep it. npm run create-admin-key makes more)`
      : 'API key    npm run create-admin-key prints a new admin key (keys are shown once, at creation)',
  );
  log(`Temporal   ${temporalServer.address}${temporalServer.uiUrl ? `, Web UI ${temporalServer.uiUrl}` : ''}`);
  log('ready; Ctrl-C stops everything');

  // The Temporal runtime turns SIGINT/SIGTERM into a graceful worker shutdown: run() returns once in-flight
  // tasks finish. Then the rest stops in reverse order of start.
  await worker.run();
  log('stopping');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  for (const stop of stops) await stop().catch((error: unknown) => log(`while stopping: ${String(error)}`));
  log('stopped');
}

main().catch((error: unknown) => {
  console.error('[start] failed:', error);
  process.exit(1);
});
