/**
 * Once per test run: a real Postgres server. Embedded in a throwaway folder unless DATABASE_URL points at one.
 * Each test file then creates its own database on it and migrates it from empty (see ./database.ts).
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../../store/embedded-postgres';

export default async function globalSetup(): Promise<void> {
  if (process.env.DATABASE_URL) {
    process.env.TEST_POSTGRES_URL = process.env.DATABASE_URL;
    return;
  }
  const root = mkdtempSync(path.join(os.tmpdir(), 'meterloop-test-'));
  const postgres = await startEmbeddedPostgres({ dataDir: path.join(root, 'pg'), persistent: false, unsafeFastMode: true });
  process.env.TEST_POSTGRES_URL = postgres.connectionString;
  (globalThis as { __testPostgres?: typeof postgres }).__testPostgres = postgres;
}
