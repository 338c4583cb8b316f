/**
 * Bulk import of subscriptions running elsewhere, against a real Postgres and a time-skipping Temporal server:
 * the CSV path of `npm run import` (500 rows, rerun once) and `POST /v1/subscriptions/import`, and an imported
 * subscription billing at the end of the period it was imported in.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createApp } from '../../api/app';
import { importReportCsv, importSubscriptionsCsv } from '../../api/subscription-import-csv';
import { importedSubscriptionId } from '../../api/subscription-import';
import { addIntervals, parseInterval } from '../../domain/periods';
import type { CustomerRow } from '../../store/customers';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { createBillingWorker } from '../../worker/create-worker';
import { SEARCH_ATTRIBUTES, subscriptionStateQuery, subscriptionWorkflowId } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { runHistories } from '../support/histories';
import { insertCustomer, insertPlan } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let worker: Worker;
let workerRun: Promise<void>;
let admin: TestHttp;
let appKeyHeaders: { authorization: string };

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  worker = await createBillingWorker({ connection: env.nativeConnection, db, workflowBundle: await workflowBundle() });
  workerRun = worker.run();
  admin = await serve(createApp({ db, temporal: env.client }), { headers: (await createTestApiKey(db, 'admin')).headers });
  appKeyHeaders = (await createTestApiKey(db, 'app')).headers;
}, 120_000);

afterAll(async () => {
  await admin?.close();
  worker?.shutdown();
  await workerRun;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

const countSubscriptions = async (): Promise<number> => Number((await db('subscriptions').count<{ count: string }[]>('* as count'))[0].count);

test('500 rows from a CSV: created with a per-row report, bad rows rejected with a code, a rerun creates nothing twice', async () => {
  // A yearly plan, so that no imported period ends while the other tests skip time.
  const plan = await insertPlan(db, { code: 'import-yearly', billing_interval: 'P1Y', flat_fee: '120' });
  const customers: CustomerRow[] = [];
  for (let index = 0; index < 497; index += 1) customers.push(await insertCustomer(db, { external_id: `import-customer-${index}` }));
  const anchor = new Date(Math.floor((await env.currentTimeMs()) / 86_400_000) * 86_400_000 - 100 * 86_400_000).toISOString();
  const lines = customers.map((customer, index) => `legacy-${index},${customer.external_id},import-yearly,${anchor},${anchor}`);
  lines.splice(10, 0, `legacy-unknown,nobody-we-know,import-yearly,${anchor},${anchor}`); // row 11
  lines.splice(20, 0, `legacy-misaligned,import-customer-1,import-yearly,${anchor},2020-02-03T00:00:00Z`); // row 21
  lines.push(`legacy-0,import-customer-0,import-yearly,${anchor},${anchor}`); // row 500: the same external id again
  const csv = `external_id,customer_external_id,plan_code,billing_anchor,current_period_start\n${lines.join('\n')}\n`;
  expect(lines).toHaveLength(500);
  const before = await countSubscriptions();

  const progress: number[] = [];
  const first = await importSubscriptionsCsv({ db, temporal: env.client }, csv, (step) => progress.push(step.done));
  expect(progress).toEqual([500]);
  expect(first.filter((row) => row.status === 'created')).toHaveLength(497);
  expect(first.filter((row) => row.status === 'rejected').map((row) => [row.row + 1, row.external_id, row.code])).toEqual([
    [11, 'legacy-unknown', 'customer_not_found'],
    [21, 'legacy-misaligned', 'period_not_aligned'],
    [500, 'legacy-0', 'duplicate_external_id'],
  ]);
  expect(first[0]).toEqual({ row: 0, external_id: 'legacy-0', subscription_id: importedSubscriptionId('legacy-0'), status: 'created' });
  expect(await countSubscriptions()).toBe(before + 497);
  const row = await db('subscriptions').where({ external_id: 'legacy-42' }).first();
  expect(row).toMatchObject({ id: importedSubscriptionId('legacy-42'), status: 'active', customer_id: customers[42].id, plan_id: plan.id });
  expect(row.current_period_start.toISOString()).toBe(anchor);
  expect(row.current_period_end.toISOString()).toBe(addIntervals(new Date(anchor), parseInterval('P1Y'), 1).toISOString());

  // The workflow runs inside the imported period: active, nothing invoiced (the other system billed it).
  const state = await env.client.workflow.getHandle(subscriptionWorkflowId(row.id)).query(subscriptionStateQuery);
  expect(state).toMatchObject({ status: 'active', currentPeriod: { index: 0, start: anchor }, lastInvoice: null });
  expect(await db('invoices').whereIn('subscription_id', db('subscriptions').select('id').where({ plan_id: plan.id })).count<{ count: string }[]>('* as count')).toEqual([{ count: '0' }]);

  // Rerun of the same file: every good row is there already, nothing is created twice.
  const rerun = await importSubscriptionsCsv({ db, temporal: env.client }, csv);
  expect(rerun.filter((report) => report.status === 'existing')).toHaveLength(497);
  expect(rerun.filter((report) => report.status === 'created')).toHaveLength(0);
  expect(rerun.map((report) => report.subscription_id)).toEqual(first.map((report) => report.subscription_id));
  expect(await countSubscriptions()).toBe(before + 497);

  const report = importReportCsv(rerun).split('\n');
  expect(report[0]).toBe('row,external_id,subscription_id,status,code,detail,uncovered_events,uncovered_earliest');
  expect(report[1]).toBe(`1,legacy-0,${importedSubscriptionId('legacy-0')},existing,,,,`);
  expect(report[11]).toMatch(/^11,legacy-unknown,,rejected,customer_not_found,/);
}, 300_000);

test('a workflow already started for a row whose insert never happened is adopted on the rerun of the same row, not started twice, and refused for an edited row', async () => {
  // The import starts workflows first and writes the rows after: a crash in between leaves a workflow without a row.
  const customer = await insertCustomer(db, { external_id: 'crash-customer' });
  await insertPlan(db, { code: 'import-yearly-crash', billing_interval: 'P1Y', flat_fee: '120' });
  const anchor = new Date(Math.floor((await env.currentTimeMs()) / 86_400_000) * 86_400_000 - 86_400_000).toISOString();
  const row = { external_id: 'legacy-crash', customer_id: customer.id, plan_code: 'import-yearly-crash', billing_anchor: anchor, current_period_start: anchor };
  const [created] = await importSubscriptionsCsv({ db, temporal: env.client }, `external_id,customer_id,plan_code,billing_anchor,current_period_start\n${Object.values(row).join(',')}\n`);
  expect(created.status).toBe('created');
  await db('subscriptions').where({ external_id: 'legacy-crash' }).delete(); // as if the insert had never committed

  // The row edited before the rerun (another plan, another customer, another anchor): its row would name what the
  // running workflow does not bill, so it is refused and nothing is written.
  const otherCustomer = await insertCustomer(db, { external_id: 'crash-customer-2' });
  await insertPlan(db, { code: 'import-yearly-crash-2', billing_interval: 'P1Y', flat_fee: '240' });
  const dayBefore = new Date(new Date(anchor).getTime() - 86_400_000).toISOString();
  for (const [edit, field] of [
    [{ plan_code: 'import-yearly-crash-2' }, 'plan'],
    [{ customer_id: otherCustomer.id }, 'customer'],
    [{ billing_anchor: dayBefore, current_period_start: dayBefore }, 'billing_anchor'],
  ] as const) {
    const edited = await admin.call('POST', '/v1/subscriptions/import', { rows: [{ ...row, ...edit }] });
    expect(edited.status).toBe(200);
    expect(edited.json).toMatchObject({ created: 0, existing: 0, rejected: 1, rows: [{ row: 0, external_id: 'legacy-crash', subscription_id: null, status: 'rejected', code: 'external_id_conflict' }] });
    expect(edited.json.rows[0].detail).toContain(`a different ${field} (`);
    expect(await db('subscriptions').where({ external_id: 'legacy-crash' }).first()).toBeUndefined();
  }

  const answer = await admin.call('POST', '/v1/subscriptions/import', { rows: [row] });
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ created: 1, existing: 0, rejected: 0, rows: [{ row: 0, external_id: 'legacy-crash', subscription_id: created.subscription_id, status: 'created' }] });
  const runs = await env.client.workflow.getHandle(subscriptionWorkflowId(created.subscription_id!)).describe();
  expect(runs.status.name).toBe('RUNNING');
  // Ops find an imported subscription in the Temporal UI as they find one started over the API.
  expect(await runs.staticSummary()).toBe(`${customer.name} · import-yearly-crash`);
  expect(runs.typedSearchAttributes.get(SEARCH_ATTRIBUTES.status)).toBe('active');
});

test('two imports of one external_id at once with different plans: one is created, the other refused, and the row names the plan its workflow bills', async () => {
  const customer = await insertCustomer(db, { external_id: 'race-customer' });
  const plans = [await insertPlan(db, { code: 'import-yearly-race-a', billing_interval: 'P1Y', flat_fee: '120' }), await insertPlan(db, { code: 'import-yearly-race-b', billing_interval: 'P1Y', flat_fee: '240' })];
  const anchor = new Date(Math.floor((await env.currentTimeMs()) / 86_400_000) * 86_400_000 - 86_400_000).toISOString();
  const answers = await Promise.all(
    plans.map((plan) => admin.call('POST', '/v1/subscriptions/import', { rows: [{ external_id: 'legacy-race', customer_id: customer.id, plan_code: plan.code, billing_anchor: anchor, current_period_start: anchor }] })),
  );
  const reports = answers.map((answer) => answer.json.rows[0]);
  expect(reports.map((report) => report.status).sort()).toEqual(['created', 'rejected']);
  expect(reports.find((report) => report.status === 'rejected')).toMatchObject({ code: 'external_id_conflict' });
  const stored = await db('subscriptions').where({ external_id: 'legacy-race' }).first();
  const winner = plans[reports.findIndex((report) => report.status === 'created')];
  expect(stored.plan_id).toBe(winner.id);
  expect((await env.client.workflow.getHandle(subscriptionWorkflowId(stored.id)).query(subscriptionStateQuery)).planCode).toBe(winner.code);
});

test('POST /v1/subscriptions/import: admin only, zod-validated rows, problem+json for a bad body', async () => {
  const customer = await insertCustomer(db, { external_id: 'api-import-customer' });
  await insertPlan(db, { code: 'import-yearly-api', billing_interval: 'P1Y', flat_fee: '120' });
  const anchor = new Date(Math.floor((await env.currentTimeMs()) / 86_400_000) * 86_400_000 - 86_400_000).toISOString();
  const good = { external_id: 'api-1', customer_id: customer.id, plan_code: 'import-yearly-api', billing_anchor: anchor, current_period_start: anchor };

  const refused = await admin.call('POST', '/v1/subscriptions/import', { rows: [good] }, appKeyHeaders);
  expect(refused).toMatchObject({ status: 403, json: { code: 'forbidden' } });
  expect(await db('subscriptions').where({ external_id: 'api-1' }).first()).toBeUndefined();

  for (const body of [{ rows: [] }, { rows: Array.from({ length: 1001 }, () => good) }, { lines: [good] }]) {
    const bad = await admin.call('POST', '/v1/subscriptions/import', body);
    expect(bad.status).toBe(422);
    expect(bad.type).toContain('application/problem+json');
    expect(bad.json.code).toBe('validation_failed');
  }

  const answer = await admin.call('POST', '/v1/subscriptions/import', {
    rows: [good, { ...good, external_id: 'api-2', customer_id: undefined }, { ...good, external_id: 'api-3', billing_anchor: '2001-01-01T00:00:00Z', current_period_start: '2001-01-01T00:00:00Z' }],
  });
  expect(answer.status).toBe(200);
  expect(answer.json.rows.map((row: { status: string; code?: string }) => [row.status, row.code])).toEqual([
    ['created', undefined],
    ['rejected', 'validation_failed'],
    ['rejected', 'period_already_ended'],
  ]);
  expect(await db('subscriptions').whereIn('external_id', ['api-2', 'api-3'])).toEqual([]);
});

test('an imported subscription bills at the end of the period it was imported in: the next fees, no second bill for that period', async () => {
  // Timeline: anchor A = 40 days ago (monthly plan); imported in period 1 [A+1M, A+2M), billed elsewhere.
  //   A+2M: invoice for period 2 [A+2M, A+3M) (fees in advance), charged; nothing for period 1.
  const customer = await insertCustomer(db, { external_id: 'renewal-customer' });
  await insertPlan(db, { code: 'import-monthly', billing_interval: 'P1M', flat_fee: '30' });
  const monthly = parseInterval('P1M');
  const anchor = new Date(Math.floor((await env.currentTimeMs()) / 86_400_000) * 86_400_000 - 40 * 86_400_000);
  const periodStart = addIntervals(anchor, monthly, 1);
  const periodEnd = addIntervals(anchor, monthly, 2);
  const answer = await admin.call('POST', '/v1/subscriptions/import', {
    rows: [{ external_id: 'legacy-renewal', customer_id: customer.id, plan_code: 'import-monthly', billing_anchor: anchor.toISOString(), current_period_start: periodStart.toISOString() }],
  });
  expect(answer.json.rows[0].status).toBe('created');
  const subscriptionId: string = answer.json.rows[0].subscription_id;
  const handle = env.client.workflow.getHandle(subscriptionWorkflowId(subscriptionId));
  expect((await handle.query(subscriptionStateQuery)).currentPeriod).toEqual({ index: 1, start: periodStart.toISOString(), end: periodEnd.toISOString() });

  await env.sleep(periodEnd.getTime() - (await env.currentTimeMs()) + 60_000);
  let invoices: InvoiceRow[] = [];
  for (let attempt = 0; attempt < 100 && !invoices.some((invoice) => invoice.status === 'paid'); attempt += 1) {
    invoices = await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId });
    if (!invoices.some((invoice) => invoice.status === 'paid')) await env.sleep(60_000);
  }
  expect(invoices.map((invoice) => [invoice.kind, invoice.period_start.toISOString(), Number(invoice.total), invoice.status])).toEqual([
    ['period', periodEnd.toISOString(), 30, 'paid'],
  ]);

  // The import sets no patch flags: the run took its code's patches itself, as one generation at its first task,
  // so the boundary recorded no marker, and the period step is the cheaper one (the charge a local activity, no
  // activity task) without the client having claimed it.
  const events = (await runHistories(env.client, handle.workflowId)).flatMap((history) => history.events ?? []);
  const patchMarkers = events.filter((event) => event.markerRecordedEventAttributes?.markerName === 'core_patch');
  expect(patchMarkers).toHaveLength(1);
  expect(events.indexOf(patchMarkers[0])).toBeLessThan(events.findIndex((event) => event.timerFiredEventAttributes));
  expect(events.filter((event) => event.activityTaskScheduledEventAttributes)).toEqual([]);
}, 120_000);
