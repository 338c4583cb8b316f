/**
 * A migration often starts metering first and imports the subscriptions after: the customer's events stamped before
 * the imported current period are accepted (no subscription yet: kept) and then priced by nothing, since the imported
 * subscription starts at its current period. `POST /v1/subscriptions` says so (`uncovered_usage`); the import said
 * nothing, in its answer or in the CSV report of `npm run import`: 2 events (75 calls, 75.00 at 1.00) unbilled and
 * unmentioned. Each imported row now reports them as the create route does, and a rerun reports the same; in a
 * batch each row counts only its own plan's types (a customer with two rows on two plans, a plan metering nothing).
 *
 *   anchor A = 40 days ago, monthly | S = A+1M, the imported current period start (about 10 days ago)
 *   S-5d 30 calls, S-2d 45 calls (uncovered) | S-3d a type the plan does not meter | S+1h 5 calls (billed at S+1M)
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import { importedSubscriptionId } from '../../api/subscription-import';
import { importReportCsv, importSubscriptionsCsv } from '../../api/subscription-import-csv';
import { addIntervals, parseInterval } from '../../domain/periods';
import type { Database } from '../../store/database';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let admin: TestHttp;
let app: TestHttp;

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  const express = createApp({ db, temporal: env.client });
  admin = await serve(express, { headers: (await createTestApiKey(db, 'admin')).headers });
  app = await serve(express, { headers: (await createTestApiKey(db, 'app')).headers });
}, 120_000);

afterAll(async () => {
  await Promise.all([admin?.close(), app?.close()]);
  await Promise.all([env?.teardown(), db?.destroy()]);
});

const DAY = 86_400_000;
const anchor = new Date(Math.floor(Date.now() / DAY) * DAY - 40 * DAY);
const periodStart = addIntervals(anchor, parseInterval('P1M'), 1);
const at = (offset: number): string => new Date(periodStart.getTime() + offset).toISOString();

const customerNamed = async (externalId: string): Promise<string> => {
  const created = await admin.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  expect(created.status).toBe(201);
  return created.json.id;
};

const sendCalls = async (customer: string): Promise<void> => {
  const sent = await app.call('POST', '/v1/events', {
    events: [
      { id: `${customer}-early`, customer, type: 'iu.calls', timestamp: at(-5 * DAY), properties: { n: 30 } },
      { id: `${customer}-other`, customer, type: 'iu.other', timestamp: at(-3 * DAY), properties: { n: 1 } },
      { id: `${customer}-late`, customer, type: 'iu.calls', timestamp: at(-2 * DAY), properties: { n: 45 } },
      { id: `${customer}-inside`, customer, type: 'iu.calls', timestamp: at(3_600_000), properties: { n: 5 } },
    ],
  });
  expect(sent.json).toMatchObject({ accepted: 4 });
};

beforeAll(async () => {
  expect((await admin.call('POST', '/v1/metrics', { code: 'iu_calls', name: 'Calls', event_type: 'iu.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  expect((await admin.call('POST', '/v1/plans', { code: 'iu', name: 'IU', currency: 'USD', billing_interval: 'P1M', flat_fee: '10.00', charges: [{ metric_code: 'iu_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] })).status).toBe(201);
}, 60_000);

const importRow = (externalId: string, customerExternalId: string) => ({
  external_id: externalId,
  customer_external_id: customerExternalId,
  plan_code: 'iu',
  billing_anchor: anchor.toISOString(),
  current_period_start: periodStart.toISOString(),
});

test('an imported row whose current period starts after stored events of its plan types reports them; a rerun reports the same', async () => {
  const migrated = await customerNamed('iu-migrated');
  await customerNamed('iu-fresh');
  await sendCalls('iu-migrated');

  const first = await admin.call('POST', '/v1/subscriptions/import', { rows: [importRow('iu-legacy-1', 'iu-migrated'), importRow('iu-legacy-2', 'iu-fresh')] });
  expect(first.status).toBe(200);
  const uncovered = { events: 2, earliest: at(-5 * DAY) };
  expect(first.json.rows).toEqual([
    { row: 0, external_id: 'iu-legacy-1', subscription_id: importedSubscriptionId('iu-legacy-1'), status: 'created', uncovered_usage: uncovered },
    { row: 1, external_id: 'iu-legacy-2', subscription_id: importedSubscriptionId('iu-legacy-2'), status: 'created' },
  ]);

  // The same judgement as the customer's uncovered-usage list: the two calls events, not the other type nor the
  // event inside the imported period.
  const listed = await app.call('GET', `/v1/customers/${migrated}/uncovered-usage`);
  expect(listed.json.data.map((event: { id: string; reason: string }) => [event.id, event.reason])).toEqual([
    ['iu-migrated-early', 'before_first_subscription'],
    ['iu-migrated-other', 'before_first_subscription'],
    ['iu-migrated-late', 'before_first_subscription'],
  ]);

  const rerun = await admin.call('POST', '/v1/subscriptions/import', { rows: [importRow('iu-legacy-1', 'iu-migrated'), importRow('iu-legacy-2', 'iu-fresh')] });
  expect(rerun.json.rows).toEqual([
    { row: 0, external_id: 'iu-legacy-1', subscription_id: importedSubscriptionId('iu-legacy-1'), status: 'existing', uncovered_usage: uncovered },
    { row: 1, external_id: 'iu-legacy-2', subscription_id: importedSubscriptionId('iu-legacy-2'), status: 'existing' },
  ]);
}, 120_000);

test('the CSV import (npm run import) reports them in its row report and its CSV', async () => {
  await customerNamed('iu-csv');
  await sendCalls('iu-csv');
  const row = importRow('iu-legacy-csv', 'iu-csv');
  const csv = `external_id,customer_external_id,plan_code,billing_anchor,current_period_start\n${Object.values(row).join(',')}\n`;

  const [report] = await importSubscriptionsCsv({ db, temporal: env.client }, csv);
  expect(report).toEqual({ row: 0, external_id: 'iu-legacy-csv', subscription_id: importedSubscriptionId('iu-legacy-csv'), status: 'created', uncovered_usage: { events: 2, earliest: at(-5 * DAY) } });
  const [rerun] = await importSubscriptionsCsv({ db, temporal: env.client }, csv);
  expect(rerun).toEqual({ ...report, status: 'existing' });

  const lines = importReportCsv([rerun]).split('\n');
  expect(lines[0]).toBe('row,external_id,subscription_id,status,code,detail,uncovered_events,uncovered_earliest');
  expect(lines[1]).toBe(`1,iu-legacy-csv,${importedSubscriptionId('iu-legacy-csv')},existing,,,2,${at(-5 * DAY)}`);
}, 120_000);

test('in one batch, each row reports only the types its own plan meters, a customer with two rows included; a plan metering nothing reports none', async () => {
  expect((await admin.call('POST', '/v1/metrics', { code: 'iu_other', name: 'Other', event_type: 'iu.other', aggregation: 'count' })).status).toBe(201);
  expect((await admin.call('POST', '/v1/plans', { code: 'iu-other', name: 'IU other', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', charges: [{ metric_code: 'iu_other', price: { model: 'per_unit', unitPrice: '2.00' } }] })).status).toBe(201);
  expect((await admin.call('POST', '/v1/plans', { code: 'iu-flat', name: 'IU flat', currency: 'USD', billing_interval: 'P1M', flat_fee: '10.00', charges: [] })).status).toBe(201);
  await customerNamed('iu-two');
  await customerNamed('iu-flat-only');
  await sendCalls('iu-two');
  await sendCalls('iu-flat-only');

  const answer = await admin.call('POST', '/v1/subscriptions/import', {
    rows: [importRow('iu-two-calls', 'iu-two'), { ...importRow('iu-two-other', 'iu-two'), plan_code: 'iu-other' }, { ...importRow('iu-flat', 'iu-flat-only'), plan_code: 'iu-flat' }],
  });
  expect(answer.json.rows.map((row: { status: string; uncovered_usage?: unknown }) => [row.status, row.uncovered_usage])).toEqual([
    ['created', { events: 2, earliest: at(-5 * DAY) }],
    ['created', { events: 1, earliest: at(-3 * DAY) }],
    ['created', undefined],
  ]);
}, 120_000);
