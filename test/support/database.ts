import { randomUUID } from 'node:crypto';
import { createDatabase, Database, ensureDatabaseExists, migrateToLatest } from '../../store/database';

/** A fresh database for one test file, migrated forward from empty. */
export async function createTestDatabase(): Promise<Database> {
  return (await createTestDatabaseWithUrl()).db;
}

/** The same, with its connection string (for a worker in another process). */
export async function createTestDatabaseWithUrl(): Promise<{ db: Database; url: string }> {
  const server = process.env.TEST_POSTGRES_URL;
  if (!server) throw new Error('TEST_POSTGRES_URL is unset: run tests through jest (its globalSetup starts Postgres)');
  const name = `test_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const url = await ensureDatabaseExists(server, name);
  const db = createDatabase(url);
  await migrateToLatest(db);
  return { db, url };
}
