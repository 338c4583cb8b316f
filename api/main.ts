/**
 * The API process on its own (docker-compose, production): `npm run api`.
 * Needs DATABASE_URL, and Temporal's address unless it is 127.0.0.1:7233 (TEMPORAL_* or a TOML profile); listens on PORT (default 3000). Every request needs an API key
 * (`npm run create-admin-key` makes the first one; docs/security.md). On SIGTERM/SIGINT: /readyz turns 503,
 * in-flight requests finish (SHUTDOWN_TIMEOUT_MS, default 25 s), then Postgres and Temporal are released.
 */
import { Client, Connection } from '@temporalio/client';
import { createLogger, entryLogger } from '../logging/logger';
import { startTracing } from '../tracing';
import { createDatabase, migrateToLatest } from '../store/database';
import { createApp } from './app';
import { closeGracefully } from './shutdown';
import { UsageSignalCoalescer } from './usage-signals';
import { WalletBalanceWatcher } from './wallet-signals';
import { temporalConnectionFromEnv } from '../config/temporal-connection';
import { connectOrExplain } from '../config/temporal-connect-diagnosis';
import { databasePoolMax } from '../config/tuning';

const logger = createLogger('api');

async function main(): Promise<void> {
  // First: http and pg are instrumented before the server listens and Postgres connects (off without an OTLP endpoint).
  const tracing = startTracing({ serviceName: 'meterloop-api' });
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is required (npm start provides an embedded Postgres instead)');
  const db = createDatabase(databaseUrl, databasePoolMax());
  await migrateToLatest(db);
  // TOML profile and TEMPORAL_* variables (config/temporal-connection.ts); plain 127.0.0.1:7233 when none is set.
  const temporalSettings = temporalConnectionFromEnv();
  logger.info({ temporal: temporalSettings.summary }, 'connecting to Temporal');
  const connection = await connectOrExplain(temporalSettings, (options) => Connection.connect(options));
  const temporal = new Client({ connection, namespace: temporalSettings.namespace, plugins: tracing.temporalPlugins });
  const port = Number(process.env.PORT ?? 3000);
  const usageSignals = new UsageSignalCoalescer(db, temporal, { log: entryLogger(logger.child({ component: 'usage-signals' })) });
  usageSignals.start();
  const walletWatcher = new WalletBalanceWatcher(db, temporal, { log: entryLogger(logger.child({ component: 'wallet-watcher' })) });
  walletWatcher.start();
  let draining = false;
  const server = createApp({ db, temporal, usageSignals, walletWatcher, log: logger, draining: () => draining }).listen(port, process.env.HOST ?? '0.0.0.0', () => {
    logger.info({ port }, 'api listening');
  });
  const shutdown = (signal: string): void => {
    if (draining) return;
    draining = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    // Stop accepting, let in-flight requests finish, then release Postgres and Temporal.
    void closeGracefully(server, { timeoutMs: Number(process.env.SHUTDOWN_TIMEOUT_MS ?? 25_000), log: entryLogger(logger) })
      .then(() => usageSignals.stop())
      .then(() => walletWatcher.stop())
      .then(() => Promise.all([db.destroy(), connection.close()]))
      .then(() => tracing.shutdown())
      .then(
        () => {
          logger.info('stopped');
          process.exit(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  // Every background task catches its own failures (usage-signals.ts, the idempotency sweep); a rejection that still
  // escapes is a bug to log loudly, not a reason to take the whole API down (Node's default exits the process).
  process.on('unhandledRejection', (reason: unknown) => logger.error({ err: reason }, 'unhandled rejection (a bug; the API keeps serving)'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((error: unknown) => {
  logger.fatal({ err: error }, 'api failed to start');
  process.exit(1);
});
