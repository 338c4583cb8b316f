import type { RunningPostgres } from '../../store/embedded-postgres';

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { __testPostgres?: RunningPostgres }).__testPostgres?.stop();
}
