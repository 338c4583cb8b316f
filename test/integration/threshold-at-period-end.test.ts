/**
 * A threshold check that the workflow gets to only after its period has ended: the signal came while dunning held
 * the period end (or while the worker was down or behind). The check rated the open stretch up to "now", so the
 * next period's events landed on the closing period's threshold invoice, and that period's own invoice came out
 * negative. The check rates no further than the period's end. Time-skipping server, the API and a real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { CLASSIFIED_ACTIVITIES, createActivities } from '../../activities';
import { classifyActivityFailures } from '../../activities/failures';
import { createApp } from '../../api/app';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { paymentMethodUpdatedSignal, TASK_QUEUE, usageThresholdReachedSignal } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { runHistories } from '../support/histories';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;
let serverNow = new Date();
let worker: { instance: Worker; running: Promise<void> } | undefined;

async function startWorker(): Promise<void> {
  const instance = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    // No sticky queue: the stopped worker's sticky queue would hold the next workflow task until its timeout.
    maxCachedWorkflows: 0,
    activities: classifyActivityFailures(createActivities({ db, gateway: new SandboxGateway(db) }), CLASSIFIED_ACTIVITIES),
  });
  worker = { instance, running: instance.run() };
}

async function stopWorker(): Promise<void> {
  worker?.instance.shutdown();
  await worker?.running;
  worker = undefined;
}

async function skipTo(instant: string): Promise<void> {
  const target = new Date(instant).getTime();
  const now = await env.currentTimeMs();
  if (target > now) await env.sleep(target - now);
  serverNow = new Date(await env.currentTimeMs());
}

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  await startWorker();
  api = await serve(createApp({ db, temporal: env.client, now: () => serverNow }), { headers: (await createTestApiKey(db, 'admin')).headers });
  expect((await api.call('POST', '/v1/metrics', { code: 'calls', name: 'API calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
});

afterAll(async () => {
  await api?.close();
  await stopWorker();
  await Promise.all([env?.teardown(), db?.destroy()]);
});

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'initech', type: 'api.calls', timestamp, properties: { n } });
const money = (amount: string): string => Number(amount).toFixed(2);

test('a threshold signal handled after the period end (dunning held it) bills none of the next period on the closing period', async () => {
  const plan = await api.call('POST', '/v1/plans', {
    code: 'progressive',
    name: 'Progressive',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '10.00',
    usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '0.25' } }],
    usage_thresholds: { amounts: ['100.00', '200.00'] },
  });
  expect(plan.status).toBe(201);
  const customer = await api.call('POST', '/v1/customers', { external_id: 'initech', name: 'Initech', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'progressive', start_at: '2031-03-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  const subscriptionId: string = subscription.json.id;
  const handle = env.client.workflow.getHandle(`subscription:${subscriptionId}`);
  const setCard = (paymentMethod: string) => db('customers').where({ id: customer.json.id }).update({ payment_method: paymentMethod });
  await skipTo('2031-03-01T00:01:00Z');
  await eventually(async () => (await db('subscriptions').where({ id: subscriptionId }).first())?.current_period_start, 'the first period to open');

  // Timeline (2031), calls at 0.25, thresholds 100.00 and 200.00:
  //   Mar 28  440 calls (110.00) -> threshold 1: invoice 110.00, declined -> dunning (retries a day, then 3 days on)
  //   Mar 30  400 calls (100.00, March 210.00) -> threshold 2 signaled while dunning: the check waits for dunning
  //   Apr 1   2000 calls of April (500.00); Apr 2 a working card -> the threshold invoice is paid, and only then
  //           does the workflow check threshold 2, past March's end
  await skipTo('2031-03-27T00:00:00Z');
  await setCard('pm_sandbox_declined');
  await skipTo('2031-03-28T00:00:00Z');
  await api.call('POST', '/v1/events', { events: [calls('m1', '2031-03-27T12:00:00Z', 440)] });
  await handle.signal(usageThresholdReachedSignal, { thresholdIndex: 1, accrued: '110.00' });
  await eventually(async () => (await db('invoices').where({ subscription_id: subscriptionId, kind: 'threshold', status: 'open' })).length === 1, 'the declined threshold invoice');
  await skipTo('2031-03-30T00:00:00Z');
  await api.call('POST', '/v1/events', { events: [calls('m2', '2031-03-29T12:00:00Z', 400)] });
  await handle.signal(usageThresholdReachedSignal, { thresholdIndex: 2, accrued: '210.00' });
  await skipTo('2031-04-01T00:10:00Z');
  await api.call('POST', '/v1/events', { events: [calls('a1', '2031-04-01T00:05:00Z', 2000)] });
  await skipTo('2031-04-02T00:00:00Z');
  await setCard('pm_sandbox_ok');
  await handle.signal(paymentMethodUpdatedSignal);

  // Threshold 2 bills March up to its end: 210.00 - 110.00. Before, it rated up to Apr 2 and billed April's 500.00
  // with it (600.00), and March's own invoice, on Apr 1 01:00's close, came out at -490.00.
  await skipTo('2031-04-03T00:00:00Z');
  const invoices: InvoiceRow[] = await eventually(async () => {
    const rows: InvoiceRow[] = await db('invoices').where({ subscription_id: subscriptionId }).orderBy(['created_at']);
    return rows.some((invoice) => invoice.kind === 'period' && invoice.period_start.toISOString().startsWith('2031-04-01')) && rows;
  }, "April's period invoice");
  expect(invoices.map((invoice) => [invoice.kind, invoice.period_start.toISOString().slice(0, 10), money(invoice.total), invoice.status])).toEqual([
    ['period', '2031-03-01', '10.00', 'paid'],
    ['threshold', '2031-03-01', '110.00', 'paid'],
    ['threshold', '2031-03-01', '100.00', 'paid'],
    ['period', '2031-04-01', '10.00', 'paid'],
  ]);
  const usageLines = async (invoice: InvoiceRow) =>
    (await db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id }).orderBy('position'))
      .filter((line) => line.kind === 'usage' || line.kind === 'threshold_credit')
      .map((line) => [line.kind, line.period_start.toISOString().slice(0, 10), line.period_end.toISOString().slice(0, 16), money(line.amount)]);
  expect(await usageLines(invoices[2])).toEqual([
    ['usage', '2031-03-01', '2031-04-01T00:00', '210.00'],
    ['threshold_credit', '2031-03-01', '2031-04-01T00:00', '-110.00'],
  ]);
  // April's invoice closes March: 210.00 of usage, all of it billed already by the two threshold invoices.
  expect(await usageLines(invoices[3])).toEqual([
    ['usage', '2031-03-01', '2031-04-01T00:00', '210.00'],
    ['threshold_credit', '2031-03-01', '2031-04-01T00:00', '-110.00'],
    ['threshold_credit', '2031-03-01', '2031-04-01T00:00', '-100.00'],
  ]);
  const bundle = await workflowBundle();
  for (const [index, history] of (await runHistories(env.client, handle.workflowId)).entries()) {
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, `threshold-at-period-end-run-${index}`);
  }
  await handle.terminate('test done');
});
