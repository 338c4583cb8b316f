import type { PostgresServer } from '../../store/throwaway-database';

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { __testPostgres?: PostgresServer }).__testPostgres?.stop();
}
