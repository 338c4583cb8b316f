import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { registerSearchAttributes, resolveTimeSkippingServer } from '../../scripts/temporal-servers';
import { WORKFLOWS_PATH } from '../../worker/create-worker';
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

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** The workflow bundle, built once per test file instead of once per worker. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: silentLogger });
  return bundle;
}

/** That bundle in a file, for a worker in its own process (WORKFLOW_BUNDLE_PATH of test/support/worker-process.ts). */
export async function workflowBundleFile(): Promise<string> {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'meterloop-bundle-')), 'workflows.js');
  writeFileSync(file, (await workflowBundle()).code);
  return file;
}

const noop = (): void => undefined;
const silentLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop };

