/**
 * Once per test run: a real Postgres server (embedded in a throwaway folder unless DATABASE_URL points at one) with
 * one migrated template database, and a folder for what test files share (the workflow bundle: ./temporal.ts).
 * Each test file then gets its own database, copied from the template (see ./database.ts).
 *
 * Why share: jest gives every test file fresh modules, so anything built "once" in a module is built once per file.
 * Migrating from empty cost about 1 s per file and bundling the workflows 2-4 s, in some 300 files.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createThrowawayDatabase, dropDatabase, startThrowawayServer } from '../../store/throwaway-database';

export default async function globalSetup(): Promise<void> {
  const postgres = await startThrowawayServer({ tempPrefix: 'meterloop-test-', durable: false });
  const template = await createThrowawayDatabase(postgres.url, { namePrefix: 'test_template' });
  await template.db.destroy(); // a template must have no connection while it is copied
  process.env.TEST_POSTGRES_URL = postgres.url;
  process.env.TEST_TEMPLATE_DATABASE = template.name;
  process.env.TEST_RUN_DIR = await mkdtemp(path.join(os.tmpdir(), 'meterloop-test-run-'));
  (globalThis as { __testRun?: TestRun }).__testRun = { postgres, dropTemplate: () => dropDatabase(postgres.url, template.name), runDir: process.env.TEST_RUN_DIR };
}

export interface TestRun {
  readonly postgres: { stop(): Promise<void> };
  readonly dropTemplate: () => Promise<void>;
  readonly runDir: string;
}
