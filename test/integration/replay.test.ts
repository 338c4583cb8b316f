/**
 * Determinism guard: every recorded workflow history in test/fixtures/histories replays against the current
 * workflow code without a non-determinism error. A change to running workflows must go behind patched().
 */
import { Worker } from '@temporalio/worker';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { HISTORIES_DIR, readHistory } from '../support/histories';
import { workflowBundle } from '../support/temporal';

const fixtures = readdirSync(HISTORIES_DIR).filter((file) => file.endsWith('.binpb'));

test('there are recorded histories to replay', () => {
  expect(fixtures.length).toBeGreaterThanOrEqual(3);
});

test.each(fixtures)('%s replays deterministically', async (file) => {
  await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, readHistory(file), path.basename(file, '.binpb'));
});
