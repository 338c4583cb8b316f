import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { existsSync, mkdtempSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { registerSearchAttributes, resolveTimeSkippingServer } from '../../scripts/temporal-servers';
import { buildWorkflowBundle } from '../../worker/workflow-bundle';
import { SEARCH_ATTRIBUTE_REGISTRATIONS } from '../../workflows/definitions';

/**
 * A real time-skipping Temporal server (found or provisioned: scripts/temporal-servers.ts; never a mock), with the
 * billing search attributes registered, as the dev server and docker-compose have them.
 */
export async function createTimeSkippingEnvironment(): Promise<TestWorkflowEnvironment> {
  const server = await resolveTimeSkippingServer({ log: () => undefined });
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: server.executable } });
  await registerSearchAttributes(env.connection, SEARCH_ATTRIBUTE_REGISTRATIONS);
  return env;
}

let bundle: Promise<WorkflowBundle> | undefined;

/**
 * The workflow bundle, built once per test run instead of once per worker or per file: the first file that asks
 * builds it into the run's folder (TEST_RUN_DIR, global-setup.ts) and later files read it. Without that folder (a
 * test run outside jest's global setup) it is built once per file.
 */
export function workflowBundle(): Promise<WorkflowBundle> {
  bundle ??= workflowBundleFile().then(async (file) => ({ code: await readFile(file, 'utf8') }));
  return bundle;
}

/** That bundle in a file, for a worker in its own process (WORKFLOW_BUNDLE_PATH of test/support/worker-process.ts). */
export async function workflowBundleFile(): Promise<string> {
  const folder = process.env.TEST_RUN_DIR ?? mkdtempSync(path.join(os.tmpdir(), 'meterloop-bundle-'));
  const file = path.join(folder, 'workflows.js');
  if (existsSync(file)) return file;
  const { code } = await buildWorkflowBundle({ logger: silentLogger });
  // Written aside and renamed: a file running beside this one (jest --maxWorkers above 1) reads a whole bundle or none.
  const partial = `${file}.${process.pid}.partial`;
  await writeFile(partial, code);
  await rename(partial, file);
  return file;
}

const noop = (): void => undefined;
const silentLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop };

