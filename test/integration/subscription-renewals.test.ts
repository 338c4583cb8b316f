/**
 * The subscription workflow against a real time-skipping Temporal server and a real Postgres.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { createBillingWorker } from '../../worker/create-worker';
import {
  cancelSubscriptionUpdate,
  SUBSCRIPTION_WORKFLOW_TYPE,
  SubscriptionState,
  subscriptionStateQuery,
  TASK_QUEUE,
} from '../../workflows/definitions';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let worker: Worker;
let workerRun: Promise<void>;

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  worker = await createBillingWorker({ connection: env.nativeConnection, db, workflowBundle: await workflowBundle() });
  workerRun = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await workerRun;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

/** Skips server time forward to an instant (time only moves forward). */
async function skipTo(instant: string): Promise<void> {
  const now = await env.currentTimeMs();
  const target = new Date(instant).getTime();
  if (target > now) await env.sleep(target - now);
}

/**
 * Advances server time in small steps until the workflow's live state satisfies `predicate`. Waiting on the
 * state (not a wall-clock instant) keeps the test independent of how fast the worker catches up with time.
 */
async function advanceUntil(
  handle: WorkflowHandle,
  predicate: (state: SubscriptionState) => boolean,
  step = '6 hours',
): Promise<SubscriptionState> {
  for (let i = 0; i < 2000; i += 1) {
    const state = await handle.query(subscriptionStateQuery);
    if (predicate(state)) return state;
    await env.sleep(step);
  }
  throw new Error(`the workflow never reached the expected state: ${JSON.stringify(await handle.query(subscriptionStateQuery))} at ${new Date(await env.currentTimeMs()).toISOString()}`);
}

async function invoicesOf(subscriptionId: string): Promise<InvoiceRow[]> {
  return db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy('period_start');
}

const day = (value: Date | string): string => new Date(value).toISOString().slice(0, 10);

test('a 14-day trial on a monthly plan started Jan 31 converts, then renews three periods with one invoice each', async () => {
  // Timeline (UTC), plan "pro-monthly" 29.00 USD, P1M, trial P14D:
  //   2027-01-31  start, trialing (no invoice)
  //   2027-02-14  trial ends -> active; period 0 [Feb 14, Mar 14): INV 29.00, charged
  //   2027-03-14  period 1 [Mar 14, Apr 14): INV 29.00
  //   2027-04-14  period 2 [Apr 14, May 14): INV 29.00
  //   (in period 2) cancel at period end
  //   2027-05-14  canceled; no fourth invoice
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: 'pro-monthly', billing_interval: 'P1M', trial_period: 'P14D', flat_fee: '29' });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2027-01-31T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });

  await skipTo('2027-02-05T00:00:00Z');
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({ status: 'trialing', trialEnd: '2027-02-14T00:00:00.000Z' });
  expect(await invoicesOf(row.id)).toHaveLength(0);

  const state = await advanceUntil(handle, (live) => live.currentPeriod?.index === 2 && live.lastInvoice?.status === 'paid');
  expect(state).toMatchObject({ status: 'active', currentPeriod: { index: 2, start: '2027-04-14T00:00:00.000Z' } });

  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'switching provider', requestedBy: 'test' }] });
  const final = await handle.result();
  expect(final.status).toBe('canceled');

  const invoices = await invoicesOf(row.id);
  expect(invoices.map((invoice) => [day(invoice.period_start), day(invoice.period_end), invoice.total, invoice.status])).toEqual([
    ['2027-02-14', '2027-03-14', '29.000000000000', 'paid'],
    ['2027-03-14', '2027-04-14', '29.000000000000', 'paid'],
    ['2027-04-14', '2027-05-14', '29.000000000000', 'paid'],
  ]);
  // Gap-free numbering: consecutive numbers in one series.
  const numbers = invoices.map((invoice) => Number(invoice.number!.split('-')[1]));
  expect(numbers).toEqual([numbers[0], numbers[0] + 1, numbers[0] + 2]);
  // Exactly one gateway charge per invoice.
  const charges = await db('sandbox_gateway_charges').whereIn('idempotency_key', invoices.map((invoice) => `payment:${invoice.id}:1`));
  expect(charges).toHaveLength(3);
  const stored = await db('subscriptions').where({ id: row.id }).first();
  expect(stored).toMatchObject({ status: 'canceled', cancel_reason: 'switching provider' });
  expect(day(stored.canceled_at)).toBe('2027-05-14');
});

// Server time only moves forward and is shared by the tests in this file, so each test lives in a later year.

test('monthly periods anchored on Jan 31 follow month ends: Feb 29 (leap year), Mar 31, Apr 30', async () => {
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: 'month-end', billing_interval: 'P1M', flat_fee: '10.005' });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2028-01-31T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await advanceUntil(handle, (live) => (live.currentPeriod?.index ?? 0) >= 2, '1 day');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'done', requestedBy: 'test' }] });
  await handle.result();
  const invoices = (await invoicesOf(row.id)).slice(0, 3);
  expect(invoices.map((invoice) => [day(invoice.period_start), day(invoice.period_end)])).toEqual([
    ['2028-01-31', '2028-02-29'],
    ['2028-02-29', '2028-03-31'],
    ['2028-03-31', '2028-04-30'],
  ]);
  // 10.005 rounds half-up once, on the line: 10.01.
  expect(invoices.map((invoice) => invoice.total)).toEqual(['10.010000000000', '10.010000000000', '10.010000000000']);
});

test('a cancel during the trial ends the subscription with no invoice', async () => {
  // Timeline: 2029-01-10 start, trial P14D; 2029-01-15 cancel; ends at once, nothing billed.
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: 'trial-cancel', billing_interval: 'P1M', trial_period: 'P14D', flat_fee: '49' });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2029-01-10T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await skipTo('2029-01-15T00:00:00Z');
  const answer = await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'not for us', requestedBy: 'test' }] });
  expect(answer.status).toBe('canceled');
  expect((await handle.result()).status).toBe('canceled');
  expect(await invoicesOf(row.id)).toHaveLength(0);
  expect(await db('subscriptions').where({ id: row.id }).first()).toMatchObject({ status: 'canceled' });
});

test('running the period-invoice activity twice for the same period leaves one invoice', async () => {
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: 'twice', billing_interval: 'P1M', flat_fee: '15' });
  const { row } = await insertSubscription(db, customer, plan, new Date('2027-06-01T00:00:00Z'));
  const { createPeriodInvoice } = createActivities({ db, gateway: new SandboxGateway(db) });
  const period = {
    subscriptionId: row.id,
    kind: 'period' as const,
    flatFeePeriod: { start: '2027-06-01T00:00:00.000Z', end: '2027-07-01T00:00:00.000Z' },
    usagePeriod: null,
  };

  const first = await createPeriodInvoice(period);
  const second = await createPeriodInvoice(period);
  // And concurrently, as a retried activity racing its first attempt would.
  const racing = await Promise.all([createPeriodInvoice(period), createPeriodInvoice(period)]);

  expect(second).toEqual(first);
  expect(racing).toEqual([first, first]);
  expect(await invoicesOf(row.id)).toHaveLength(1);
  expect(await db('invoice_lines').where({ invoice_id: first.invoiceId })).toHaveLength(1);
});

test('an update cannot cancel a subscription twice', async () => {
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: 'double-cancel', billing_interval: 'P1M', flat_fee: '5' });
  const { input, workflowId } = await insertSubscription(db, customer, plan, new Date('2030-08-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await skipTo('2030-08-02T00:00:00Z');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'first', requestedBy: 'test' }] });
  await expect(
    handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'second', requestedBy: 'test' }] }),
  ).rejects.toThrow();
  await expect(handle.result()).resolves.toMatchObject({ status: 'canceled' });
});
