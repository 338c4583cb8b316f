/**
 * An import row's current period must be current: a `current_period_start` aligned with its anchor but whole periods
 * ahead of now (a typo'd month or year) was imported `active` in that future period. The periods between now and it
 * were billed by nobody (the workflow's first invoice is at that period's end), and ingestion refused the
 * customer's usage until it began (the row's start_at).
 *
 *   anchor A = 40 days ago, monthly:  A | A+1M (now in here) | A+2M | A+3M <- row's "current" period | A+4M
 *   A+3M: refused (A+2M..A+3M would be billed by nobody); A+2M: accepted (the other system invoiced it in advance).
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import { importedSubscriptionId } from '../../api/subscription-import';
import { addIntervals, parseInterval } from '../../domain/periods';
import type { Database } from '../../store/database';
import { subscriptionWorkflowId } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let admin: TestHttp;

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  admin = await serve(createApp({ db, temporal: env.client }), { headers: (await createTestApiKey(db, 'admin')).headers });
}, 120_000);

afterAll(async () => {
  await admin?.close();
  await Promise.all([env?.teardown(), db?.destroy()]);
});

test('a current period more than one period ahead of now is refused and nothing is written; one period ahead is accepted', async () => {
  const customer = await insertCustomer(db, { external_id: 'ahead-customer' });
  await insertPlan(db, { code: 'ahead-monthly', billing_interval: 'P1M', flat_fee: '30' });
  const monthly = parseInterval('P1M');
  const anchor = new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000 - 40 * 86_400_000);
  const row = (externalId: string, periods: number) => ({
    external_id: externalId,
    customer_id: customer.id,
    plan_code: 'ahead-monthly',
    billing_anchor: anchor.toISOString(),
    current_period_start: addIntervals(anchor, monthly, periods).toISOString(),
  });

  const answer = await admin.call('POST', '/v1/subscriptions/import', { rows: [row('ahead-3', 3), row('ahead-2', 2), row('ahead-1', 1)] });

  expect(answer.status).toBe(200);
  expect(answer.json.rows.map((report: { status: string; code?: string }) => [report.status, report.code])).toEqual([
    ['rejected', 'period_not_aligned'],
    ['created', undefined],
    ['created', undefined],
  ]);
  expect(await db('subscriptions').where({ external_id: 'ahead-3' }).first()).toBeUndefined();
  await expect(env.client.workflow.getHandle(subscriptionWorkflowId(importedSubscriptionId('ahead-3'))).describe()).rejects.toMatchObject({ name: 'WorkflowNotFoundError' });
}, 120_000);
