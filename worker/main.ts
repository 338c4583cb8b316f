/**
 * The worker process on its own (docker-compose, production): `npm run worker`.
 * Needs DATABASE_URL and TEMPORAL_ADDRESS. `npm start` runs the same worker in-process for local use.
 */
import { NativeConnection } from '@temporalio/worker';
import { createDatabase } from '../store/database';
import { createBillingWorker } from './create-worker';

async function main(): Promise<void> {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is required (npm start provides an embedded Postgres instead)');
  const db = createDatabase(databaseUrl);
  const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  const worker = await createBillingWorker({ connection, db, namespace: process.env.TEMPORAL_NAMESPACE });
  // worker.run() resolves after SIGINT/SIGTERM once in-flight tasks finish (the SDK installs the handlers).
  await worker.run();
  await connection.close();
  await db.destroy();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
