import { rm } from 'node:fs/promises';
import type { TestRun } from './global-setup';

export default async function globalTeardown(): Promise<void> {
  const run = (globalThis as { __testRun?: TestRun }).__testRun;
  if (!run) return;
  await rm(run.runDir, { recursive: true, force: true });
  // An embedded server goes with its folder; DATABASE_URL's server keeps the test files' databases, as before, but
  // not the template.
  await run.dropTemplate().catch(() => undefined);
  await run.postgres.stop();
}
