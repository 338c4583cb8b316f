/**
 * A pause sent while a threshold invoice's first charge is running. The charge holds no lifecycle turn, so the pause
 * was judged against `active` beside it and answered "paused"; the charge then declined and made the subscription
 * past_due, and once dunning was paid, active: the pause was gone, the period ended on its calendar day and the next
 * one was billed for time the customer had paused. The pause now waits for the charge's answer and is judged against
 * the status it leaves (workflows/subscription/turns.ts): refused after a decline, taken after a success.
 *
 * Timeline (2031), 10.00 a month + 0.25 a call, one threshold at 100.00:
 *   Mar 1   period invoice 10.00, paid
 *   Mar 10  450 calls = 112.50 -> threshold invoice; its charge is held, a pause is sent, the charge then answers
 * Real API, workflow, activities and Postgres on a time-skipping Temporal server; the held charge is the only stand-in.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { CLASSIFIED_ACTIVITIES, createActivities } from '../../activities';
import { classifyActivityFailures } from '../../activities/failures';
import { createApp } from '../../api/app';
import { UsageThresholdSignals } from '../../api/usage-thresholds';
import type { ChargeInvoiceRequest } from '../../contract/payments';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

// The pause's answer waits for the held charge: more than the default 5 s on a loaded machine (restored after).
const callTimeoutBefore = process.env.TEMPORAL_CALL_TIMEOUT_MS;
process.env.TEMPORAL_CALL_TIMEOUT_MS = '60000';

let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;
let serverNow = new Date();
let worker: { instance: Worker; running: Promise<void> } | undefined;
/** The customer whose threshold invoice's first charge is held; the held charge, and the payment method it is let through with. */
let holdFor: string | null = null;
let held: { release: (paymentMethod: string) => void } | null = null;

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  const activities = createActivities({ db, gateway: new SandboxGateway(db) });
  const instance = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    maxCachedWorkflows: 0,
    activities: classifyActivityFailures(
      {
        ...activities,
        async chargeInvoice(request: ChargeInvoiceRequest) {
          const invoice = await db<InvoiceRow>('invoices').where({ id: request.invoiceId }).first();
          if (invoice?.kind === 'threshold' && invoice.customer_id === holdFor && request.attempt === 1) {
            const paymentMethod = await new Promise<string>((resolve) => (held = { release: resolve }));
            await db('customers').where({ id: invoice.customer_id }).update({ payment_method: paymentMethod });
          }
          return activities.chargeInvoice(request);
        },
      },
      CLASSIFIED_ACTIVITIES,
    ),
  });
  worker = { instance, running: instance.run() };
  api = await serve(createApp({ db, temporal: env.client, now: () => serverNow }), { headers: (await createTestApiKey(db, 'admin')).headers });
  expect((await api.call('POST', '/v1/metrics', { code: 'calls', name: 'API calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  const plan = await api.call('POST', '/v1/plans', {
    code: 'progressive',
    name: 'Progressive',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '10.00',
    usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '0.25' } }],
    usage_thresholds: { amounts: ['100.00'] },
  });
  expect(plan.status).toBe(201);
});

afterAll(async () => {
  if (callTimeoutBefore === undefined) delete process.env.TEMPORAL_CALL_TIMEOUT_MS;
  else process.env.TEMPORAL_CALL_TIMEOUT_MS = callTimeoutBefore;
  held?.release('pm_sandbox_ok');
  await api?.close();
  worker?.instance.shutdown();
  await worker?.running;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

async function skipTo(instant: string): Promise<void> {
  const target = new Date(instant).getTime();
  const now = await env.currentTimeMs();
  if (target > now) await env.sleep(target - now);
  serverNow = new Date(await env.currentTimeMs());
}

/** A subscription in March 2031 whose threshold charge is held (Mar 10), and the pause sent meanwhile, in flight. */
async function pauseWhileThresholdChargeIsHeld(externalId: string, startAt: string) {
  const customer = await api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscriptionId: string = (await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'progressive', start_at: startAt })).json.id;
  await skipTo(new Date(new Date(startAt).getTime() + 60_000).toISOString());
  await eventually(async () => (await db('subscriptions').where({ id: subscriptionId }).first())?.current_period_start, 'the first period to open');
  const handle = env.client.workflow.getHandle(`subscription:${subscriptionId}`);

  await skipTo(new Date(new Date(startAt).getTime() + 9 * 86_400_000).toISOString());
  const at = new Date(new Date(startAt).getTime() + 8 * 86_400_000).toISOString();
  holdFor = customer.json.id;
  await api.call('POST', '/v1/events', { events: [{ id: `${externalId}-1`, customer: externalId, type: 'api.calls', timestamp: at, properties: { n: 450 } }] });
  expect(await new UsageThresholdSignals(db, env.client).check([customer.json.id], serverNow)).toBe(1);
  await eventually(async () => held !== null, 'the threshold charge to start');
  const pause = api.call('POST', `/v1/subscriptions/${subscriptionId}/pause`, {}, { 'Idempotency-Key': `${externalId}-pause` });
  // The workflow has taken the pause (it runs beside the charge, or waits for it) before the charge answers.
  await eventually(async () => (await handle.fetchHistory()).events?.some((event) => event.workflowExecutionUpdateAcceptedEventAttributes), 'the pause to be accepted by the workflow');
  const release = (paymentMethod: string) => {
    held!.release(paymentMethod);
    held = null;
  };
  return { subscriptionId, handle, pause, release };
}

test('a pause sent while the threshold charge runs and is declined is refused: the subscription is past due, not paused', async () => {
  const { subscriptionId, handle, pause, release } = await pauseWhileThresholdChargeIsHeld('declined', '2031-03-01T00:00:00Z');
  release('pm_sandbox_declined');

  // Before: 200 {"status":"paused"}, then past_due, then active once dunning was paid (the pause gone).
  const answer = await pause;
  expect([answer.status, answer.json.code]).toEqual([409, 'subscription_not_active']);
  const state = await handle.query(subscriptionStateQuery);
  expect(state.status).toBe('past_due');
  expect(state.dunning).toMatchObject({ attempt: 1 });
  expect((await db('subscriptions').where({ id: subscriptionId }).first()).status).toBe('past_due');
});

test('a pause sent while the threshold charge runs and is paid takes effect', async () => {
  const { subscriptionId, handle, pause, release } = await pauseWhileThresholdChargeIsHeld('paid', '2031-05-01T00:00:00Z');
  release('pm_sandbox_ok');

  const answer = await pause;
  expect([answer.status, answer.json]).toEqual([200, { status: 'paused', paused_until: null }]);
  await eventually(async () => (await db('invoices').where({ subscription_id: subscriptionId, kind: 'threshold' }).first())?.status === 'paid', 'the threshold invoice to be paid');
  expect((await handle.query(subscriptionStateQuery)).status).toBe('paused');
  expect((await db('subscriptions').where({ id: subscriptionId }).first()).status).toBe('paused');
});
