/**
 * The same import posted at once, twice and ten times (a client retrying on a timeout, two API replicas): every
 * external id becomes one subscription with one workflow, every answer is a 200 report (each row `created` in exactly
 * one of them, `existing` in the others), never a 500 from two inserts of the same rows racing each other.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createApp } from '../../api/app';
import { importedSubscriptionId } from '../../api/subscription-import';
import { insertImportedSubscriptions } from '../../store/subscription-imports';
import type { Database } from '../../store/database';
import { createBillingWorker } from '../../worker/create-worker';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let worker: Worker;
let workerRun: Promise<void>;
let admin: TestHttp;

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  worker = await createBillingWorker({ connection: env.nativeConnection, db, workflowBundle: await workflowBundle() });
  workerRun = worker.run();
  admin = await serve(createApp({ db, temporal: env.client }), { headers: (await createTestApiKey(db, 'admin')).headers });
}, 120_000);

afterAll(async () => {
  await admin?.close();
  worker?.shutdown();
  await workerRun;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

async function importAtOnce(prefix: string, rowCount: number, copies: number, afterCrash = false) {
  await insertPlan(db, { code: `${prefix}-yearly`, billing_interval: 'P1Y', flat_fee: '120' });
  const customer = await insertCustomer(db, { external_id: `${prefix}-customer` });
  const anchor = new Date(Math.floor((await env.currentTimeMs()) / 86_400_000) * 86_400_000 - 86_400_000).toISOString();
  const rows = Array.from({ length: rowCount }, (_, index) => ({
    external_id: `${prefix}-${index}`,
    customer_id: customer.id,
    plan_code: `${prefix}-yearly`,
    billing_anchor: anchor,
    current_period_start: anchor,
  }));
  if (afterCrash) {
    // An earlier import started every workflow and crashed before its insert: the reruns adopt them, and so all
    // reach their insert of the same rows at about the same moment.
    expect((await admin.call('POST', '/v1/subscriptions/import', { rows })).json.created).toBe(rowCount);
    await db('subscriptions').where('external_id', 'like', `${prefix}-%`).delete();
  }
  const answers = await Promise.all(Array.from({ length: copies }, () => admin.call('POST', '/v1/subscriptions/import', { rows })));
  const stored: { external_id: string; count: string }[] = await db('subscriptions').where('external_id', 'like', `${prefix}-%`).groupBy('external_id').select('external_id').count('* as count');
  return { answers, stored };
}

test.each([
  ['twice', 2],
  ['ten times', 10],
])('one import of 200 rows posted %s at once: each row created once, every answer a 200 report', async (label, copies) => {
  const prefix = `import-at-once-${copies}`;
  const { answers, stored } = await importAtOnce(prefix, 200, copies);
  expect(answers.map((answer) => answer.status)).toEqual(Array(copies).fill(200));
  expect(stored).toHaveLength(200);
  expect(stored.every((row) => Number(row.count) === 1)).toBe(true);
  // Each row created by exactly one answer, existing in every other.
  expect(answers.reduce((sum, answer) => sum + answer.json.created, 0)).toBe(200);
  expect(answers.reduce((sum, answer) => sum + answer.json.existing, 0)).toBe(200 * (copies - 1));
  expect(answers.every((answer) => answer.json.rejected === 0)).toBe(true);
}, 120_000);

test.each([
  ['twice', 2],
  ['ten times', 10],
])('the rerun of an import that crashed before its insert, posted %s at once: each row stored once, no 500', async (label, copies) => {
  const prefix = `import-rerun-at-once-${copies}`;
  const { answers, stored } = await importAtOnce(prefix, 200, copies, true);
  expect(answers.map((answer) => [answer.status, answer.json.code])).toEqual(Array(copies).fill([200, undefined]));
  expect(stored).toHaveLength(200);
  expect(stored.every((row) => Number(row.count) === 1)).toBe(true);
  expect(answers.reduce((sum, answer) => sum + answer.json.created, 0)).toBe(200);
  expect(answers.reduce((sum, answer) => sum + answer.json.existing, 0)).toBe(200 * (copies - 1));
}, 120_000);

test('two imports writing the same rows at the same moment, in different orders: each row stored once, no deadlock, no unique violation', async () => {
  const prefix = 'import-insert-race';
  const plan = await insertPlan(db, { code: `${prefix}-yearly`, billing_interval: 'P1Y', flat_fee: '120' });
  const customer = await insertCustomer(db, { external_id: `${prefix}-customer` });
  const start = new Date('2030-01-01T00:00:00Z');
  const end = new Date('2031-01-01T00:00:00Z');
  for (let round = 0; round < 20; round += 1) {
    const rows = Array.from({ length: 300 }, (_, index) => {
      const externalId = `${prefix}-${round}-${index}`;
      const id = importedSubscriptionId(externalId);
      return { id, externalId, customerId: customer.id, planId: plan.id, workflowId: `subscription:${id}`, currentPeriodStart: start, currentPeriodEnd: end };
    });
    // The order the rows' workflow starts completed in differs between two imports.
    const orders = [rows, [...rows].reverse(), rows.filter((_, index) => index % 2 === 0).concat(rows.filter((_, index) => index % 2 === 1))];
    const results = await Promise.allSettled(orders.map((order) => insertImportedSubscriptions(db, order)));
    expect(results.map((result) => (result.status === 'rejected' ? `${(result.reason as { code?: string }).code}: ${String((result.reason as Error).message).split(' - ').pop()}` : 'ok'))).toEqual(['ok', 'ok', 'ok']);
    const insertedIds = results.flatMap((result) => (result.status === 'fulfilled' ? [...result.value] : []));
    expect(new Set(insertedIds).size).toBe(insertedIds.length);
    expect(insertedIds).toHaveLength(300);
  }
}, 120_000);
