import type { Client, WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const HISTORIES_DIR = path.join(__dirname, '..', 'fixtures', 'histories');

/**
 * With RECORD_HISTORIES=<tag>, saves the workflow run's history as a replay fixture `<name>-<tag>.binpb` (protobuf
 * binary, the server's own encoding); test/integration/replay.test.ts replays every fixture against the current
 * workflow code, so a non-deterministic change fails CI. Record after a deliberate, patched() change, under a new
 * tag (e.g. the patch generation's id). An existing fixture is never overwritten: it guards the histories of
 * subscriptions still running on the code that recorded it.
 */
export async function recordHistory(handle: WorkflowHandle, name: string): Promise<void> {
  const tag = process.env.RECORD_HISTORIES;
  if (!tag) return;
  mkdirSync(HISTORIES_DIR, { recursive: true });
  const file = path.join(HISTORIES_DIR, `${name}-${tag}.binpb`);
  if (existsSync(file)) throw new Error(`${file} exists: record under a new RECORD_HISTORIES tag, never over a fixture`);
  const history = await handle.fetchHistory();
  writeFileSync(file, temporal.api.history.v1.History.encode(history).finish());
}

/** Where the simulation keeps the histories of failing subscriptions, to replay them (outside the fixtures). */
export const FAILED_HISTORIES_DIR = path.join(__dirname, '..', '..', 'test-results', 'simulation');

/** Saves a run's history for diagnosis; returns the file written. */
export async function saveFailedHistory(handle: WorkflowHandle, name: string): Promise<string> {
  mkdirSync(FAILED_HISTORIES_DIR, { recursive: true });
  const file = path.join(FAILED_HISTORIES_DIR, `${name}.binpb`);
  writeFileSync(file, temporal.api.history.v1.History.encode(await handle.fetchHistory()).finish());
  return file;
}

/** Every run of a workflow, oldest first: the continue-as-new chain walked back from the latest run. */
export async function runHistories(client: Client, workflowId: string): Promise<temporal.api.history.v1.IHistory[]> {
  const histories: temporal.api.history.v1.IHistory[] = [];
  let runId: string | undefined = (await client.workflow.getHandle(workflowId).describe()).runId;
  while (runId) {
    const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    histories.unshift(history);
    runId = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
  }
  return histories;
}

export function readHistory(file: string): temporal.api.history.v1.History {
  return temporal.api.history.v1.History.decode(readFileSync(path.join(HISTORIES_DIR, file)));
}
