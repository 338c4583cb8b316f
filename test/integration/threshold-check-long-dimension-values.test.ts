/**
 * Progressive billing on a metric with group_by, and one accepted event whose four group_by values are 900
 * characters each. The threshold activity read the stretch's usage from the running totals (store/rollups.ts),
 * whose primary key holds the percent-encoded dimension key: 3.6 KB, past a btree entry's 2704 bytes (54000). That
 * error is retryable, so the activity was retried forever inside the workflow's main loop: no threshold invoice, and
 * the period never closed (no next invoice): the subscription's billing stopped without a word. The activity reads
 * the raw events instead, as the invoice that closes the stretch does.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import { CLASSIFIED_ACTIVITIES, createActivities } from '../../activities';
import { classifyActivityFailures } from '../../activities/failures';
import { createApp } from '../../api/app';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
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
  const metric = await api.call('POST', '/v1/metrics', { code: 'prompts', name: 'Tokens by prompt', event_type: 'llm.call', aggregation: 'sum', property: 'tokens', group_by: ['a', 'b', 'c', 'd'] });
  expect(metric.status).toBe(201);
});

afterAll(async () => {
  await api?.close();
  worker?.instance.shutdown();
  await worker?.running;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

const value = (): string => randomBytes(450).toString('hex');

test('a threshold check over an event with long group_by values bills the threshold, and the period closes', async () => {
  const plan = await api.call('POST', '/v1/plans', {
    code: 'progressive-prompts',
    name: 'Progressive prompts',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '10.00',
    usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'prompts', price: { model: 'per_unit', unitPrice: '1.00' } }],
    usage_thresholds: { every: '50.00' },
  });
  expect(plan.status).toBe(201);
  const customer = await api.call('POST', '/v1/customers', { external_id: 'promptco', name: 'PromptCo', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'progressive-prompts', start_at: '2031-03-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  const subscriptionId: string = subscription.json.id;
  const handle = env.client.workflow.getHandle(`subscription:${subscriptionId}`);
  await skipTo('2031-03-01T00:01:00Z');
  await eventually(async () => (await db('subscriptions').where({ id: subscriptionId }).first())?.current_period_start, 'the first period to open');
  await skipTo('2031-03-10T00:00:00Z');
  const events = await api.call('POST', '/v1/events', {
    events: [{ id: 'long-1', customer: 'promptco', type: 'llm.call', timestamp: '2031-03-09T12:00:00Z', properties: { tokens: 100, a: value(), b: value(), c: value(), d: value() } }],
  });
  expect(events.json).toMatchObject({ accepted: 1 });
  await handle.signal(usageThresholdReachedSignal, { thresholdIndex: 2, accrued: '100.00' });
  const threshold = await eventually(async () => (await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'threshold' }).first()) ?? false, 'the threshold invoice', { timeoutMs: 20_000 }).catch(
    () => null,
  );
  expect(threshold && Number(threshold.total).toFixed(2)).toBe('100.00');
  await skipTo('2031-04-01T02:00:00Z');
  const april = await eventually(
    async () => (await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period', period_start: new Date('2031-04-01T00:00:00Z') }).first()) ?? false,
    "April's period invoice",
    { timeoutMs: 20_000 },
  );
  // April's fee, March's 100.00 of usage less the 100.00 its threshold invoice billed.
  expect(Number(april.total).toFixed(2)).toBe('10.00');
  await handle.terminate('test done');
});
