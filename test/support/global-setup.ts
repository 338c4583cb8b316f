/**
 * Once per test run: a real Postgres server. Embedded in a throwaway folder unless DATABASE_URL points at one.
 * Each test file then creates its own database on it and migrates it from empty (see ./database.ts).
 */
import { startThrowawayServer } from '../../store/throwaway-database';

export default async function globalSetup(): Promise<void> {
  const postgres = await startThrowawayServer({ tempPrefix: 'meterloop-test-', durable: false });
  process.env.TEST_POSTGRES_URL = postgres.url;
  (globalThis as { __testPostgres?: typeof postgres }).__testPostgres = postgres;
}
