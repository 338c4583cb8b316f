/**
 * Progressive billing through the real API, workflow, activities and Postgres on a time-skipping Temporal server:
 * the API sees the open usage reach a threshold and signals; the workflow issues the threshold invoice and charges
 * it; the period invoice bills only the rest. Exactly once per threshold, across a worker stopped between the
 * threshold invoice and its charge, repeated signals, and an immediate plan change mid-period.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { CLASSIFIED_ACTIVITIES, createActivities } from '../../activities';
import { classifyActivityFailures } from '../../activities/failures';
import { createApp } from '../../api/app';
import { UsageSignalCoalescer } from '../../api/usage-signals';
import { UsageThresholdSignals } from '../../api/usage-thresholds';
import type { ChargeInvoiceRequest } from '../../contract/payments';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { TASK_QUEUE, usageThresholdReachedSignal } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { recordHistory } from '../support/histories';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;
let thresholdSignals: UsageThresholdSignals;
let serverNow = new Date();
let worker: { instance: Worker; running: Promise<void> } | undefined;
/** While set, the worker "stops" before it charges a threshold invoice: each attempt fails as a lost connection. */
let failThresholdCharges = false;
let failedThresholdCharges = 0;

async function startWorker(): Promise<void> {
  const activities = createActivities({ db, gateway: new SandboxGateway(db) });
  const instance = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    // No sticky queue: a stopped worker's sticky queue would hold the next workflow task until its timeout, and
    // the time-skipping server does not move time while a task is outstanding.
    maxCachedWorkflows: 0,
    activities: classifyActivityFailures(
      {
        ...activities,
        async chargeInvoice(request: ChargeInvoiceRequest) {
          const invoice = await db<InvoiceRow>('invoices').where({ id: request.invoiceId }).first();
          if (failThresholdCharges && invoice?.kind === 'threshold') {
            failedThresholdCharges += 1;
            throw Object.assign(new Error('worker process killed'), { code: 'ECONNRESET' });
          }
          return activities.chargeInvoice(request);
        },
      },
      CLASSIFIED_ACTIVITIES,
    ),
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
  thresholdSignals = new UsageThresholdSignals(db, env.client);
  expect((await api.call('POST', '/v1/metrics', { code: 'calls', name: 'API calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
});

afterAll(async () => {
  await api?.close();
  await stopWorker();
  await Promise.all([env?.teardown(), db?.destroy()]);
});

const calls = (id: string, customer: string, timestamp: string, n: number) => ({ id, customer, type: 'api.calls', timestamp, properties: { n } });

async function publishPlan(code: string, unitPrice: string, usageThresholds: unknown): Promise<void> {
  const plan = await api.call('POST', '/v1/plans', {
    code,
    name: code,
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '10.00',
    usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice } }],
    usage_thresholds: usageThresholds,
  });
  expect(plan.status).toBe(201);
  expect(plan.json.usage_thresholds).toEqual(usageThresholds);
}

async function subscribe(externalId: string, planCode: string, startAt: string): Promise<{ customerId: string; subscriptionId: string }> {
  const customer = await api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: planCode, start_at: startAt });
  expect(subscription.status).toBe(201);
  const subscriptionId: string = subscription.json.id;
  // The first period is open once its invoice set the subscription's current period.
  await skipTo(new Date(new Date(startAt).getTime() + 60_000).toISOString());
  await eventually(async () => (await db('subscriptions').where({ id: subscriptionId }).first())?.current_period_start, 'the first period to open');
  return { customerId: customer.json.id, subscriptionId };
}

const invoicesOf = (subscriptionId: string): Promise<(InvoiceRow & { threshold_index: number | null })[]> =>
  db('invoices').where({ subscription_id: subscriptionId }).orderBy(['period_start', 'created_at']);
const linesOf = (invoiceId: string): Promise<InvoiceLineRow[]> => db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoiceId }).orderBy('position');
const succeededCharges = (invoiceId: string) => db('sandbox_gateway_charges').where({ reference: invoiceId, status: 'succeeded' });
const money = (amount: string): string => Number(amount).toFixed(2);

/** Saves the run before the current one (the period that had the thresholds) as a replay fixture (RECORD_HISTORIES=<tag>, test/support/histories.ts). */
async function recordPreviousRun(subscriptionId: string, name: string): Promise<void> {
  const workflowId = `subscription:${subscriptionId}`;
  const current = await env.client.workflow.getHandle(workflowId).fetchHistory();
  const previousRunId = current.events![0].workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
  if (previousRunId) await recordHistory(env.client.workflow.getHandle(workflowId, previousRunId), name);
}

async function paidThresholdInvoices(subscriptionId: string, count: number): Promise<(InvoiceRow & { threshold_index: number | null })[]> {
  return eventually(
    async () => {
      const thresholds = (await invoicesOf(subscriptionId)).filter((invoice) => invoice.kind === 'threshold');
      return thresholds.length === count && thresholds.every((invoice) => invoice.status === 'paid') && thresholds;
    },
    `${count} paid threshold invoice(s)`,
  );
}

test('thresholds crossed twice, across a worker stopped between the threshold invoice and its charge, and repeated signals', async () => {
  await publishPlan('progressive', '0.25', { amounts: ['100.00', '500.00'] });
  const { customerId, subscriptionId } = await subscribe('acme', 'progressive', '2031-03-01T00:00:00Z');
  const handle = env.client.workflow.getHandle(`subscription:${subscriptionId}`);

  // Timeline (UTC, 2031), calls at 0.25, thresholds 100.00 and 500.00:
  //   Mar 1    period invoice: 10.00 in advance
  //   Mar 10   450 calls = 112.50 -> threshold 1: invoice 112.50, written; the worker stops before it is charged;
  //            a new worker finds it and charges it (one invoice, one charge)
  //   Mar 12   repeated signals: nothing
  //   Mar 20   2100 calls = 525.00 -> threshold 2: 525.00 - 112.50 = 412.50
  //   Mar 31   300 more calls; Apr 1 00:30 a late event stamped Mar 31 (100 calls) inside the grace window
  //   Apr 1 01:00  period invoice: 10.00 + 2500 calls = 625.00 - 112.50 - 412.50 = 110.00
  await skipTo('2031-03-10T00:00:00Z');
  expect((await api.call('POST', '/v1/events', { events: [calls('a1', 'acme', '2031-03-09T00:00:00Z', 450)] })).json).toMatchObject({ accepted: 1 });
  // A first attempt writes the threshold invoice and its answer is lost (the worker died before recording it): the
  // workflow's attempt, on the API's signal, finds that invoice uncharged and collects it instead of writing another.
  const periodStart = (await db('subscriptions').where({ id: subscriptionId }).first()).current_period_start.toISOString();
  const planId = (await db('subscriptions').where({ id: subscriptionId }).first()).plan_id;
  const lost = await createActivities({ db, gateway: new SandboxGateway(db) }).createThresholdInvoice({ subscriptionId, usageStart: periodStart, at: serverNow.toISOString(), planId });
  expect(lost).toMatchObject({ thresholdIndex: 1, threshold: '100.00', invoice: { total: '112.50' } });
  failThresholdCharges = true;
  await handle.signal(usageThresholdReachedSignal, { thresholdIndex: 1, accrued: '112.50' });
  // The worker stops between the threshold invoice and its charge; a new one charges it, once.
  await eventually(async () => failedThresholdCharges > 0, 'a charge attempt on the stopping worker');
  await stopWorker();
  expect(await succeededCharges(lost.invoice!.invoiceId)).toHaveLength(0);
  failThresholdCharges = false;
  await startWorker();

  const [first] = await paidThresholdInvoices(subscriptionId, 1);
  expect(first).toMatchObject({ id: lost.invoice!.invoiceId, threshold_index: 1, total: '112.500000000000' });
  expect(await succeededCharges(first.id)).toHaveLength(1);
  const firstJson = await api.call('GET', `/v1/invoices/${first.id}`);
  expect(firstJson.json).toMatchObject({ kind: 'threshold', total: '112.50', threshold: { index: 1, amount: '100.00' } });

  // The API has signaled this crossing: a new ingestion does not repeat it; signals sent anyway change nothing.
  await skipTo('2031-03-12T00:00:00Z');
  expect(await thresholdSignals.check([customerId], serverNow)).toBe(0);
  await handle.signal(usageThresholdReachedSignal, { thresholdIndex: 1, accrued: '112.50' });
  await handle.signal(usageThresholdReachedSignal, { thresholdIndex: 2, accrued: '999.00' });
  await skipTo('2031-03-13T00:00:00Z');
  expect((await invoicesOf(subscriptionId)).filter((invoice) => invoice.kind === 'threshold')).toHaveLength(1);

  await skipTo('2031-03-20T00:00:00Z');
  await api.call('POST', '/v1/events', { events: [calls('a2', 'acme', '2031-03-19T00:00:00Z', 1650)] });
  expect(await thresholdSignals.check([customerId], serverNow)).toBe(1);
  const [, second] = await paidThresholdInvoices(subscriptionId, 2);
  expect(second).toMatchObject({ threshold_index: 2, total: '412.500000000000' });
  expect((await linesOf(second.id)).map((line) => [line.kind, line.description, money(line.amount)])).toEqual([
    ['usage', expect.any(String), '525.00'],
    ['threshold_credit', `Billed on threshold invoice ${first.number}`, '-112.50'],
  ]);

  await skipTo('2031-03-31T12:00:00Z');
  await api.call('POST', '/v1/events', { events: [calls('a3', 'acme', '2031-03-31T00:00:00Z', 300)] });
  await skipTo('2031-04-01T00:30:00Z');
  await api.call('POST', '/v1/events', { events: [calls('late', 'acme', '2031-03-31T23:59:00Z', 100)] });
  // In the grace window the workflow rates the new period (empty): the late event goes on the period invoice.
  await thresholdSignals.check([customerId], serverNow);
  await skipTo('2031-04-02T00:00:00Z');

  const invoices = await invoicesOf(subscriptionId);
  expect(invoices.map((invoice) => [invoice.kind, invoice.period_start.toISOString().slice(0, 10), money(invoice.total), invoice.status])).toEqual([
    ['period', '2031-03-01', '10.00', 'paid'],
    ['threshold', '2031-03-01', '112.50', 'paid'],
    ['threshold', '2031-03-01', '412.50', 'paid'],
    ['period', '2031-04-01', '110.00', 'paid'],
  ]);
  expect((await linesOf(invoices[3].id)).map((line) => [line.kind, money(line.amount)])).toEqual([
    ['flat_fee', '10.00'],
    ['usage', '625.00'],
    ['threshold_credit', '-112.50'],
    ['threshold_credit', '-412.50'],
  ]);
  // Without thresholds the April invoice would have been 10.00 + 625.00 = 635.00 = 112.50 + 412.50 + 110.00.
  expect(112.5 + 412.5 + 110).toBe(635);
  for (const invoice of invoices) expect(await succeededCharges(invoice.id)).toHaveLength(1);
  await recordPreviousRun(subscriptionId, 'subscription-progressive-thresholds');
});

test('a plan change mid-period: the proration invoice credits the old plan\'s threshold invoice; the new plan counts from zero', async () => {
  await publishPlan('progressive-a', '0.25', { amounts: ['100.00'] });
  await publishPlan('progressive-b', '0.50', { every: '50.00' });
  const { customerId, subscriptionId } = await subscribe('globex', 'progressive-a', '2031-05-01T00:00:00Z');

  // May 5: 450 calls on A = 112.50 -> A's threshold 1. May 10: immediate change to B; the proration invoice rates
  // those 450 calls at A's price and takes back the 112.50. May 12: 120 calls on B = 60.00 -> B's threshold 1 (50.00)
  // counted from the change. Jun 1 01:00: the period invoice's usage (120 calls, 60.00) is fully credited.
  await skipTo('2031-05-05T00:00:00Z');
  await api.call('POST', '/v1/events', { events: [calls('g1', 'globex', '2031-05-04T00:00:00Z', 450)] });
  expect(await thresholdSignals.check([customerId], serverNow)).toBe(1);
  const [onA] = await paidThresholdInvoices(subscriptionId, 1);
  expect(onA).toMatchObject({ threshold_index: 1, total: '112.500000000000' });

  await skipTo('2031-05-10T00:00:00Z');
  const change = await api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'progressive-b', effective: 'immediate' }, { 'Idempotency-Key': 'globex-to-b' });
  expect(change.status).toBe(200);
  const proration = (await invoicesOf(subscriptionId)).find((invoice) => invoice.kind === 'proration')!;
  const prorationLines = await linesOf(proration.id);
  expect(prorationLines.filter((line) => line.kind === 'usage' || line.kind === 'threshold_credit').map((line) => [line.kind, money(line.amount)])).toEqual([
    ['usage', '112.50'],
    ['threshold_credit', '-112.50'],
  ]);

  await skipTo('2031-05-12T00:00:00Z');
  await api.call('POST', '/v1/events', { events: [calls('g2', 'globex', '2031-05-11T00:00:00Z', 120)] });
  // This time through the API's usage coalescer, which runs the threshold check after ingestion.
  const coalescer = new UsageSignalCoalescer(db, env.client, { thresholds: thresholdSignals, log: () => undefined });
  coalescer.record(customerId, 1, new Date('2031-05-11T00:00:00Z'));
  await coalescer.flush();
  const [, onB] = await paidThresholdInvoices(subscriptionId, 2);
  expect(onB).toMatchObject({ threshold_index: 1, total: '60.000000000000' });
  expect(onB.period_start.toISOString()).toBe(change.json.effective_at);

  await skipTo('2031-06-02T00:00:00Z');
  const june = (await invoicesOf(subscriptionId)).find((invoice) => invoice.kind === 'period' && invoice.period_start.toISOString().startsWith('2031-06-01'))!;
  expect((await linesOf(june.id)).map((line) => [line.kind, money(line.amount)])).toEqual([
    ['flat_fee', '10.00'],
    ['usage', '60.00'],
    ['threshold_credit', '-60.00'],
  ]);
  expect(money(june.total)).toBe('10.00');
  await recordPreviousRun(subscriptionId, 'subscription-progressive-plan-change');
});

test('plan creation refuses thresholds that could not be billed, writing nothing', async () => {
  const refused = await api.call('POST', '/v1/plans', {
    code: 'bad-thresholds',
    name: 'Bad',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '0.25' } }],
    usage_thresholds: { amounts: ['500.00', '100.005'] },
  });
  expect(refused.status).toBe(422);
  expect(refused.json).toMatchObject({ code: 'invalid_usage_thresholds' });
  expect(refused.json.errors).toEqual([
    expect.objectContaining({ path: 'usage_thresholds.amounts.1', message: expect.stringContaining('more decimals') }),
  ]);
  const notIncreasing = await api.call('POST', '/v1/plans', { code: 'bad-thresholds', name: 'Bad', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '0.25' } }], usage_thresholds: { amounts: ['500.00', '100.00'] } });
  expect(notIncreasing.json).toMatchObject({ code: 'invalid_usage_thresholds' });
  const unmetered = await api.call('POST', '/v1/plans', { code: 'bad-thresholds', name: 'Bad', currency: 'USD', billing_interval: 'P1M', flat_fee: '10.00', usage_thresholds: { every: '50.00' } });
  expect(unmetered.json).toMatchObject({ code: 'invalid_usage_thresholds' });
  expect((await api.call('POST', '/v1/plans', { code: 'bad-thresholds', name: 'Bad', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', usage_thresholds: { every: 'ten' } })).status).toBe(422);
  expect(await db('plans').where({ code: 'bad-thresholds' })).toHaveLength(0);
});
