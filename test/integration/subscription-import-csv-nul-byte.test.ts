/**
 * A CSV row whose external id holds a NUL character (which Postgres text cannot store) must be rejected on its own.
 * `npm run import` does not pass the API's input guard: the batch's lookup of imported external ids failed in
 * Postgres, and the whole import stopped there with no report (the rows of that batch and of every later one lost).
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { importSubscriptionsCsv } from '../../api/subscription-import-csv';
import { importedSubscriptionId } from '../../api/subscription-import';
import type { Database } from '../../store/database';
import { subscriptionWorkflowId } from '../../workflows/definitions';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';
import { createTimeSkippingEnvironment } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
}, 120_000);

afterAll(async () => {
  await Promise.all([env?.teardown(), db?.destroy()]);
});

test('a NUL in one row rejects that row only: the other rows of its batch are created, and no workflow runs without its row', async () => {
  const customer = await insertCustomer(db, { external_id: 'nul-customer' });
  await insertPlan(db, { code: 'nul-yearly', billing_interval: 'P1Y', flat_fee: '120' });
  const anchor = new Date(Math.floor((await env.currentTimeMs()) / 86_400_000) * 86_400_000 - 86_400_000).toISOString();
  const csv =
    'external_id,customer_external_id,plan_code,billing_anchor,current_period_start\n' +
    `nul-good-1,nul-customer,nul-yearly,${anchor},${anchor}\n` +
    `nul-bad\u0000id,nul-customer,nul-yearly,${anchor},${anchor}\n` +
    `nul-good-2,nul-customer,nul-yearly,${anchor},${anchor}\n`;

  const reports = await importSubscriptionsCsv({ db, temporal: env.client }, csv);

  expect(reports.map((report) => [report.row, report.status, report.code])).toEqual([
    [0, 'created', undefined],
    [1, 'rejected', 'validation_failed'],
    [2, 'created', undefined],
  ]);
  const stored = await db('subscriptions').where({ customer_id: customer.id }).orderBy('external_id').select('external_id');
  expect(stored.map((row: { external_id: string }) => row.external_id)).toEqual(['nul-good-1', 'nul-good-2']);
  // Nothing was started for the refused row.
  await expect(env.client.workflow.getHandle(subscriptionWorkflowId(importedSubscriptionId('nul-bad\u0000id'))).describe()).rejects.toMatchObject({ name: 'WorkflowNotFoundError' });
}, 120_000);
