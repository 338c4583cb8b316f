/**
 * The API process on its own (docker-compose, production): `npm run api`.
 * Needs DATABASE_URL and TEMPORAL_ADDRESS; listens on PORT (default 3000).
 */
import { Client, Connection } from '@temporalio/client';
import { createDatabase, migrateToLatest } from '../store/database';
import { createApp } from './app';
import { UsageSignalCoalescer } from './usage-signals';

async function main(): Promise<void> {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is required (npm start provides an embedded Postgres instead)');
  const db = createDatabase(databaseUrl);
  await migrateToLatest(db);
  const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  const temporal = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' });
  const port = Number(process.env.PORT ?? 3000);
  const usageSignals = new UsageSignalCoalescer(db, temporal);
  usageSignals.start();
  const server = createApp({ db, temporal, usageSignals }).listen(port, process.env.HOST ?? '0.0.0.0', () => {
    console.log(JSON.stringify({ level: 'info', msg: 'api listening', port }));
  });
  const shutdown = (): void => {
    // Stop accepting, let in-flight requests finish, then release Postgres and Temporal.
    server.close(() => {
      void usageSignals
        .stop()
        .then(() => Promise.all([db.destroy(), connection.close()]))
        .then(() => process.exit(0));
    });
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
