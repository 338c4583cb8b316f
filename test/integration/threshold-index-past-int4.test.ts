/**
 * A plan with `usage_thresholds: { every: "0.01" }` and a large accrued amount: the highest threshold reached
 * (accrued / every) passed 2^31 - 1, the int4 `invoices.threshold_index` refused it (22003, numeric out of range) and
 * the threshold activity failed on every attempt: no threshold invoice, the subscription stuck. The index is capped
 * at what the column holds: the threshold invoice bills all that accrued, and the closing invoice bills the rest.
 * Time-skipping server, the API and a real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { CLASSIFIED_ACTIVITIES, createActivities } from '../../activities';
import { classifyActivityFailures } from '../../activities/failures';
import { createApp } from '../../api/app';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import { TASK_QUEUE, usageThresholdReachedSignal } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;
let serverNow = new Date();
let worker: { instance: Worker; running: Promise<void> } | undefined;

async function skipTo(instant: string): Promise<void> {
  const target = new Date(instant).getTime();
  const now = await env.currentTimeMs();
  if (target > now) await env.sleep(target - now);
  serverNow = new Date(await env.currentTimeMs());
}

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  const instance = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    activities: classifyActivityFailures(createActivities({ db, gateway: new SandboxGateway(db) }), CLASSIFIED_ACTIVITIES),
  });
  worker = { instance, running: instance.run() };
  api = await serve(createApp({ db, temporal: env.client, now: () => serverNow }), { headers: (await createTestApiKey(db, 'admin')).headers });
  expect((await api.call('POST', '/v1/metrics', { code: 'calls', name: 'API calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
});

afterAll(async () => {
  await api?.close();
  worker?.instance.shutdown();
  await worker?.running;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

test('a threshold index past 2^31 (every 0.01 on 30,000,000.00 accrued) still gets its threshold invoice', async () => {
  const plan = await api.call('POST', '/v1/plans', {
    code: 'penny-thresholds',
    name: 'Penny thresholds',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0.00',
    usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '1.00' } }],
    usage_thresholds: { every: '0.01' },
  });
  expect(plan.status).toBe(201);
  const customer = await api.call('POST', '/v1/customers', { external_id: 'bigco', name: 'BigCo', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'penny-thresholds', start_at: '2031-03-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  const subscriptionId: string = subscription.json.id;
  await skipTo('2031-03-01T00:01:00Z');
  await eventually(async () => (await db('subscriptions').where({ id: subscriptionId }).first())?.current_period_start, 'the first period to open');
  await skipTo('2031-03-10T00:00:00Z');
  const events = await api.call('POST', '/v1/events', {
    events: [{ id: 'big-1', customer: 'bigco', type: 'api.calls', timestamp: '2031-03-09T12:00:00Z', properties: { n: 30_000_000 } }],
  });
  expect(events.json.accepted).toBe(1);
  // 30,000,000.00 accrued / 0.01 = threshold 3,000,000,000 (past int4's 2,147,483,647).
  await env.client.workflow.getHandle(`subscription:${subscriptionId}`).signal(usageThresholdReachedSignal, { thresholdIndex: 3_000_000_000, accrued: '30000000.00' });
  const invoice = await eventually(
    async () => (await db('invoices').where({ subscription_id: subscriptionId, kind: 'threshold' }).first()) ?? false,
    'the threshold invoice',
    { timeoutMs: 20_000 },
  ).catch(async () => {
    const row = await db('subscriptions').where({ id: subscriptionId }).first();
    throw new Error(`no threshold invoice; subscription status ${row?.status}`);
  });
  expect(Number(invoice.total).toFixed(2)).toBe('30000000.00');
  expect(Number(invoice.threshold_index)).toBe(2_147_483_647);
  await env.client.workflow.getHandle(`subscription:${subscriptionId}`).terminate('test done');
});
