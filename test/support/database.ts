import type { Database } from '../../store/database';
import { createThrowawayDatabase } from '../../store/throwaway-database';

/** A fresh database for one test file, a copy of the run's migrated template (global-setup.ts). */
export async function createTestDatabase(): Promise<Database> {
  return (await createTestDatabaseWithUrl()).db;
}

/**
 * The same, with its connection string (for a worker in another process). Not dropped: the whole server goes
 * at the end of the run (global-teardown.ts).
 */
export async function createTestDatabaseWithUrl(): Promise<{ db: Database; url: string }> {
  const server = process.env.TEST_POSTGRES_URL;
  if (!server) throw new Error('TEST_POSTGRES_URL is unset: run tests through jest (its globalSetup starts Postgres)');
  const { db, url } = await createThrowawayDatabase(server, { namePrefix: 'test', template: process.env.TEST_TEMPLATE_DATABASE });
  return { db, url };
}
