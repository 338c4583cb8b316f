/**
 * `needs_attention` is shown over the status the subscription stands in (workflows/subscription/attention.ts), and
 * the row mirror writes it as the row's status (store/subscriptions.ts `mirrorSubscriptionStatus`). What ingestion
 * judges by the standing status must hold meanwhile: a pending cancellation's usage end (the period's end, read from
 * the status `pending_cancellation`) and a blocked subscription's refusal. Before, a pending cancellation whose
 * closing step needed attention accepted usage stamped after its end; the closing invoice stops at the period's end,
 * so that usage was accepted, never billed, and not listed as late either. Real Postgres, time-skipping Temporal.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { createApp } from '../../api/app';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import { mirrorSubscriptionStatus } from '../../store/subscriptions';
import { SubscriptionState, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let worker: Worker;
let workerRun: Promise<void>;
let api: TestHttp;
let finance: { authorization: string };
/** The API's clock follows the test server's (refreshed by skipTo). */
let serverNow = new Date();

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    activities: createActivities({ db, gateway: new SandboxGateway(db) }),
  });
  workerRun = worker.run();
  api = await serve(createApp({ db, temporal: env.client, now: () => serverNow }), { headers: (await createTestApiKey(db, 'admin')).headers });
  finance = (await createTestApiKey(db, 'finance')).headers;
  expect((await api.call('POST', '/v1/metrics', { code: 'ua-calls', name: 'Calls', event_type: 'ua.call', aggregation: 'count' })).status).toBe(201);
  const calls = [{ metric_code: 'ua-calls', price: { model: 'per_unit', unitPrice: '0.10' } }];
  const plan = { code: 'ua-monthly', name: 'Monthly', currency: 'USD', billing_interval: 'P1M', flat_fee: '20.00', usage_grace_period: 'PT1H', charges: calls };
  expect((await api.call('POST', '/v1/plans', plan)).status).toBe(201);
});

afterAll(async () => {
  await api?.close();
  worker?.shutdown();
  await workerRun;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

async function skipTo(instant: string): Promise<void> {
  const target = new Date(instant).getTime();
  const now = await env.currentTimeMs();
  if (target > now) await env.sleep(target - now);
  serverNow = new Date(await env.currentTimeMs());
}

const stateOf = (handle: WorkflowHandle): Promise<SubscriptionState> => handle.query(subscriptionStateQuery);

test('a pending cancellation whose closing invoice needs attention still refuses usage after its end', async () => {
  // Timeline (UTC, 2032):
  //   Jan 1        start; Jan invoice 20.00 paid
  //   Jan 10       one call (0.10); cancel at period end -> pending_cancellation (usage ends Feb 1)
  //   Feb 1 01:00  grace over: the closing invoice is refused by Postgres (a check constraint) -> needs_attention
  //   Feb 1 02:00  a call stamped Feb 1 01:30, after the end: must be refused (timestamp_after_subscription_end)
  //   (ops)        constraint dropped, retry -> closing invoice bills January's call (0.10) -> canceled
  const customer = await api.call('POST', '/v1/customers', { external_id: 'ua-pending', name: 'ua', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const created = await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'ua-monthly', start_at: '2032-01-01T00:00:00Z' });
  expect(created.status).toBe(201);
  const id: string = created.json.id;
  const handle = env.client.workflow.getHandle(`subscription:${id}`);
  await skipTo('2032-01-10T00:00:00Z');
  await eventually(async () => (await stateOf(handle)).lastInvoice?.status === 'paid', 'the January invoice');
  const send = (eventId: string, timestamp: string) =>
    api.call('POST', '/v1/events', { events: [{ id: eventId, customer: 'ua-pending', type: 'ua.call', timestamp }] });
  expect((await send('jan-10', '2032-01-10T00:00:00Z')).json).toMatchObject({ accepted: 1 });
  expect((await api.call('POST', `/v1/subscriptions/${id}/cancel`, { at: 'period_end', reason: 'leaving' })).json.status).toBe('pending_cancellation');

  await db.raw(`ALTER TABLE invoices ADD CONSTRAINT ua_test_refused_closing CHECK (kind <> 'closing' OR subscription_id <> '${id}')`);
  try {
    await skipTo('2032-02-01T02:00:00Z');
    let last: SubscriptionState | undefined;
    await eventually(async () => {
      last = await stateOf(handle);
      return last.status === 'needs_attention';
    }, () => `the closing invoice to need attention: ${JSON.stringify(last)}`);
    expect((await db('subscriptions').where({ id }).first()).status).toBe('needs_attention');
    const after = await send('feb-1', '2032-02-01T01:30:00Z');
    // Before: {"accepted":1}, and the closing invoice billed 0.10 (January's call only); the event was never closed.
    expect({ status: after.status, code: after.json.errors?.[0]?.code }).toEqual({ status: 422, code: 'timestamp_after_subscription_end' });
  } finally {
    await db.raw('ALTER TABLE invoices DROP CONSTRAINT IF EXISTS ua_test_refused_closing');
  }
  expect((await api.call('POST', `/v1/subscriptions/${id}/retry`, {}, finance)).status).toBe(202);
  await eventually(async () => (await stateOf(handle)).status === 'canceled', 'the retried closing invoice');
  const closing = await db('invoices').where({ subscription_id: id, kind: 'closing' }).first();
  expect(closing.total).toBe('0.100000000000');
});

test('a blocked subscription stays blocked while a step needs attention, and the standing status after it decides again', async () => {
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: `ua-blocked-${customer.id}`, billing_interval: 'P1M', flat_fee: '1' });
  const { row } = await insertSubscription(db, customer, plan, new Date('2032-06-01T00:00:00Z'));
  const record = (status: string, usageBlocked: boolean, at: string) =>
    mirrorSubscriptionStatus(db, { subscriptionId: row.id, status, at, reason: null, trialEnd: null, usageBlocked });
  const blocked = async () => (await db('subscriptions').where({ id: row.id }).first('status', 'usage_blocked'));
  await record('suspended', true, '2032-06-10T00:00:00.000Z');
  await record('needs_attention', false, '2032-06-11T00:00:00.000Z');
  expect(await blocked()).toEqual({ status: 'needs_attention', usage_blocked: true });
  await record('active', false, '2032-06-12T00:00:00.000Z');
  expect(await blocked()).toEqual({ status: 'active', usage_blocked: false });
});

test('a canceled subscription whose charge after the end needs attention keeps its end, and when and why it was canceled', async () => {
  // Dunning after the end (workflows/subscription/collection.ts `collectAfterTheEnd`) can need attention: the status
  // goes canceled -> needs_attention -> canceled, the last with the retry's time and reason.
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: `ua-canceled-${customer.id}`, billing_interval: 'P1M', flat_fee: '1' });
  const { row } = await insertSubscription(db, customer, plan, new Date('2032-07-01T00:00:00Z'));
  const record = (status: string, at: string, reason: string) =>
    mirrorSubscriptionStatus(db, { subscriptionId: row.id, status, at, reason, trialEnd: null, usageBlocked: false });
  const columns = async () => {
    const stored = await db('subscriptions').where({ id: row.id }).first('status', 'canceled_at', 'cancel_reason', 'usage_ends_at');
    return { ...stored, canceled_at: stored.canceled_at?.toISOString() ?? null, usage_ends_at: stored.usage_ends_at?.toISOString() ?? null };
  };
  await record('canceled', '2032-07-10T00:00:00.000Z', 'leaving');
  await record('needs_attention', '2032-07-12T00:00:00.000Z', 'charge_invoice failed (check_violation)');
  // Ingestion's end for a canceled subscription with no closed usage is its cancellation: kept while it needs attention.
  expect(await columns()).toEqual({ status: 'needs_attention', canceled_at: '2032-07-10T00:00:00.000Z', cancel_reason: 'leaving', usage_ends_at: '2032-07-10T00:00:00.000Z' });
  await record('canceled', '2032-07-13T00:00:00.000Z', 'charge_invoice succeeded on retry');
  expect(await columns()).toEqual({ status: 'canceled', canceled_at: '2032-07-10T00:00:00.000Z', cancel_reason: 'leaving', usage_ends_at: '2032-07-10T00:00:00.000Z' });
  // A win-back restart still clears them, and a later cancellation records its own.
  await record('active', '2032-08-01T00:00:00.000Z', 'win-back');
  expect(await columns()).toEqual({ status: 'active', canceled_at: null, cancel_reason: null, usage_ends_at: null });
  await record('canceled', '2032-09-01T00:00:00.000Z', 'leaving again');
  expect(await columns()).toMatchObject({ canceled_at: '2032-09-01T00:00:00.000Z', cancel_reason: 'leaving again' });
});
