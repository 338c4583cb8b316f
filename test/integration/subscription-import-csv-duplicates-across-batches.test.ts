/**
 * One external id twice in one CSV file is refused as a duplicate wherever the copies fall. The command cuts a file
 * into batches of 1,000 rows: a copy in the same batch was refused `duplicate_external_id`, but one in a later batch
 * was reported `existing` (as if imported before), though it named another customer: that row was lost unnoticed.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { importSubscriptionsCsv } from '../../api/subscription-import-csv';
import { IMPORT_BATCH_LIMIT, importedSubscriptionId } from '../../api/subscription-import';
import type { Database } from '../../store/database';
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

test('an external id repeated in a later batch of the same file is rejected as a duplicate, not reported existing', async () => {
  const first = await insertCustomer(db, { external_id: 'dup-batches-a' });
  await insertCustomer(db, { external_id: 'dup-batches-b' });
  await insertPlan(db, { code: 'dup-batches-yearly', billing_interval: 'P1Y', flat_fee: '120' });
  const anchor = new Date(Math.floor((await env.currentTimeMs()) / 86_400_000) * 86_400_000 - 86_400_000).toISOString();
  // Row 1 and row 1,001 share an external id; the rows between are refused at once (unknown plan), starting nothing.
  const lines = [`legacy-dup,dup-batches-a,dup-batches-yearly,${anchor},${anchor}`];
  for (let index = 1; index < IMPORT_BATCH_LIMIT; index += 1) lines.push(`filler-${index},dup-batches-a,no-such-plan,${anchor},${anchor}`);
  lines.push(`legacy-dup,dup-batches-b,dup-batches-yearly,${anchor},${anchor}`);
  const csv = `external_id,customer_external_id,plan_code,billing_anchor,current_period_start\r\n${lines.join('\r\n')}\r\n`;

  const reports = await importSubscriptionsCsv({ db, temporal: env.client }, csv);

  expect(reports).toHaveLength(IMPORT_BATCH_LIMIT + 1);
  expect(reports[0]).toMatchObject({ status: 'created', subscription_id: importedSubscriptionId('legacy-dup') });
  expect(reports[IMPORT_BATCH_LIMIT]).toMatchObject({ row: IMPORT_BATCH_LIMIT, external_id: 'legacy-dup', status: 'rejected', code: 'duplicate_external_id', subscription_id: null });
  expect(await db('subscriptions').where({ external_id: 'legacy-dup' }).select('customer_id')).toEqual([{ customer_id: first.id }]);
}, 120_000);
