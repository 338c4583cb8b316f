/**
 * End to end: the HTTP API, a worker and the Temporal CLI dev server (with visibility), over a real Postgres.
 * A customer subscribes to a plan with 20-second periods; ops can find the workflow by search attributes and
 * the first invoice is in Postgres, paid. The tests talk to the API through the TypeScript client
 * (clients/typescript), and every answer is checked against the OpenAPI document.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from '../../api/app';
import { openApiDocument } from '../../api/openapi';
import { createMeterloopClient, MeterloopClient } from '../../clients/typescript/src';
import { UsageSignalCoalescer } from '../../api/usage-signals';
import { RunningDevServer, startDevServer } from '../../scripts/temporal-servers';
import type { Database } from '../../store/database';
import { createBillingWorker } from '../../worker/create-worker';
import { SEARCH_ATTRIBUTE_REGISTRATIONS, type SubscriptionState } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { contractCheckingFetch } from '../support/openapi-contract';
import { workflowBundle } from '../support/temporal';

let db: Database;
let devServer: RunningDevServer;
let nativeConnection: NativeConnection;
let connection: Connection;
let temporal: Client;
let worker: Worker;
let workerRun: Promise<void>;
let api: Server;
let baseUrl: string;
let usageSignals: UsageSignalCoalescer;
let authorization: string;
let monitoringAuthorization: string;
/** The API as an application sees it: the typed client, with an admin key. */
let meterloop: MeterloopClient;
let meterloopDocument: ReturnType<typeof openApiDocument>;

beforeAll(async () => {
  [db, devServer] = await Promise.all([
    createTestDatabase(),
    startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_REGISTRATIONS, log: () => undefined }),
  ]);
  nativeConnection = await NativeConnection.connect({ address: devServer.address });
  worker = await createBillingWorker({ connection: nativeConnection, db, workflowBundle: await workflowBundle() });
  workerRun = worker.run();
  connection = await Connection.connect({ address: devServer.address });
  temporal = new Client({ connection });
  usageSignals = new UsageSignalCoalescer(db, temporal, { flushIntervalMs: 100, floorMs: 1_000, signalsPerPeriod: 2 });
  usageSignals.start();
  authorization = (await createTestApiKey(db, 'admin')).headers.authorization;
  monitoringAuthorization = (await createTestApiKey(db, 'monitoring')).headers.authorization;
  const app = createApp({ db, temporal, usageSignals });
  api = await new Promise<Server>((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => resolve(server));
  });
  baseUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  meterloopDocument = openApiDocument(app);
  meterloop = createMeterloopClient({ baseUrl, apiKey: authorization.replace(/^Bearer /, ''), fetch: contractCheckingFetch(meterloopDocument) });
});

afterAll(async () => {
  await new Promise((resolve) => api?.close(resolve));
  await usageSignals?.stop();
  worker?.shutdown();
  await workerRun;
  await nativeConnection?.close();
  await connection?.close();
  await devServer?.stop();
  await db?.destroy();
});

/** The subscription's live workflow state, as GET /v1/subscriptions/{id} reports it (null until the worker answers). */
async function liveState(subscriptionId: string): Promise<SubscriptionState | null> {
  const { data } = await meterloop.GET('/v1/subscriptions/{id}', { params: { path: { id: subscriptionId } } });
  return (data?.live ?? null) as SubscriptionState | null;
}

async function subscriptionInvoices(subscriptionId: string) {
  const { data } = await meterloop.GET('/v1/invoices', { params: { query: { subscription_id: subscriptionId } } });
  return data!.data;
}

test('API + worker + dev server: subscribe, find the workflow by search attributes, see the first invoice', async () => {
  const customer = await meterloop.POST('/v1/customers', { body: { external_id: 'e2e-acme', name: 'Acme', currency: 'USD', payment_method: 'pm_sandbox_ok' } });
  expect(customer.response.status).toBe(201);
  const plan = await meterloop.POST('/v1/plans', { body: { code: 'e2e-fast', name: 'Fast', currency: 'USD', billing_interval: 'PT20S', flat_fee: '2.50' } });
  expect(plan.response.status).toBe(201);
  const customerId = customer.data!.id;
  const subscription = await meterloop.POST('/v1/subscriptions', { body: { customer_id: customerId, plan_code: 'e2e-fast' } });
  expect(subscription.response.status).toBe(201);
  const subscriptionId = subscription.data!.id;

  // Ops: list by search attribute, as the Temporal UI's filter does.
  const listed = await eventually(async () => {
    for await (const execution of temporal.workflow.list({
      query: `BillingCustomerId = '${customerId}' AND BillingStatus = 'active' AND BillingPlanCode = 'e2e-fast'`,
    })) {
      return execution;
    }
    return undefined;
  }, 'the workflow in visibility');
  expect(listed.workflowId).toBe(`subscription:${subscriptionId}`);
  expect(listed.status.name).toBe('RUNNING');

  const invoice = await eventually(async () => (await subscriptionInvoices(subscriptionId)).find((row) => row.status === 'paid'), 'the first invoice, paid');
  expect(invoice).toMatchObject({ kind: 'period', total: '2.50', currency: 'USD' });
  const detail = await meterloop.GET('/v1/invoices/{id}', { params: { path: { id: invoice.id } } });
  expect(detail.data!.lines).toEqual([expect.objectContaining({ kind: 'flat_fee', amount: '2.50', quantity: '1' })]);

  const live = await meterloop.GET('/v1/subscriptions/{id}', { params: { path: { id: subscriptionId } } });
  expect(live.data).toMatchObject({ status: 'active', live: { status: 'active', lastInvoice: { total: '2.50', status: 'paid' } } });

  const canceled = await meterloop.POST('/v1/subscriptions/{id}/cancel', { params: { path: { id: subscriptionId } }, body: { at: 'now', reason: 'e2e done' } });
  expect(canceled.data).toMatchObject({ status: 'canceled' });
  await temporal.workflow.getHandle(`subscription:${subscriptionId}`).result();
});

test('thousands of usage events reach the workflow as a few coalesced signals, and canceling now bills them', async () => {
  await meterloop.POST('/v1/metrics', { body: { code: 'e2e_calls', name: 'API calls', event_type: 'api.call', aggregation: 'count' } });
  await meterloop.POST('/v1/plans', {
    body: {
      code: 'e2e-metered',
      name: 'Metered',
      currency: 'USD',
      billing_interval: 'PT1M',
      flat_fee: '0',
      usage_grace_period: 'PT1S',
      charges: [{ metric_code: 'e2e_calls', price: { model: 'per_unit', unitPrice: '0.0015' } }],
    },
  });
  const customer = await meterloop.POST('/v1/customers', { body: { external_id: 'e2e-metered', name: 'Metered Co', currency: 'USD', payment_method: 'pm_sandbox_ok' } });
  const subscription = await meterloop.POST('/v1/subscriptions', { body: { customer_id: customer.data!.id, plan_code: 'e2e-metered' } });
  const subscriptionId = subscription.data!.id;
  const handle = temporal.workflow.getHandle(`subscription:${subscriptionId}`);
  const opened = await eventually(async () => {
    const state = await liveState(subscriptionId);
    return state?.lastInvoice ? state : undefined;
  }, 'the first period to open');

  // Timestamps between the period's start and now, so every event belongs to the open period.
  const periodStart = new Date(opened.currentPeriod!.start).getTime();
  const now = Date.now();
  for (let batch = 0; batch < 3; batch += 1) {
    const events = Array.from({ length: 1000 }, (_, i) => ({
      id: `call-${batch}-${i}`,
      customer: 'e2e-metered',
      type: 'api.call',
      timestamp: new Date(Math.max(periodStart, now - i)).toISOString(),
      properties: {},
    }));
    expect((await meterloop.POST('/v1/events', { body: { events } })).data).toMatchObject({ accepted: 1000 });
  }
  const live = await eventually(async () => {
    const state = await liveState(subscriptionId);
    return state && state.usageEventsReported > 0 ? state : undefined;
  }, 'a coalesced usage summary');
  expect(live.usageEventsReported).toBeGreaterThanOrEqual(1000);
  const signals = (await handle.fetchHistory()).events!.filter((event) => event.workflowExecutionSignaledEventAttributes);
  expect(signals.length).toBeLessThanOrEqual(2); // 3,000 events, at most two signals in the period

  const usage = await meterloop.GET('/v1/subscriptions/{id}/usage', { params: { path: { id: subscriptionId } } });
  expect(usage.data!.projected).toMatchObject({ usage_total: '4.50' }); // 3,000 x 0.0015

  await meterloop.POST('/v1/subscriptions/{id}/cancel', { params: { path: { id: subscriptionId } }, body: { at: 'now', reason: 'done' } });
  await handle.result();
  const closing = (await subscriptionInvoices(subscriptionId)).find((invoice) => invoice.kind === 'closing');
  expect(closing).toMatchObject({ total: '4.50', status: 'paid' });
});

test('bad input is an application/problem+json error with a stable code, and nothing is written', async () => {
  const before = await db('customers').count<{ count: string }[]>('* as count');
  // What the client's types refuse to compile, sent anyway (as an untyped caller would).
  const rejected = await meterloop.POST('/v1/customers', { body: { external_id: 'x', name: 'X', currency: 'usd', credit: 12.5 } as never });
  expect(rejected.response.status).toBe(422);
  expect(rejected.response.headers.get('content-type')).toContain('application/problem+json');
  expect(rejected.error?.code).toBe('validation_failed');
  const missing = await meterloop.POST('/v1/subscriptions', { body: { customer_id: '00000000-0000-4000-8000-000000000000', plan_code: 'e2e-fast' } });
  expect([missing.response.status, missing.error?.code]).toEqual([404, 'customer_not_found']);
  const money = await meterloop.POST('/v1/plans', { body: { code: 'floaty', name: 'F', currency: 'USD', billing_interval: 'P1M', flat_fee: 9.99 } as never });
  expect([money.response.status, money.error?.code]).toEqual([422, 'validation_failed']);
  expect(await db('customers').count<{ count: string }[]>('* as count')).toEqual(before);
  expect(await db('plans').where({ code: 'floaty' })).toHaveLength(0);
});

test('ops: /readyz sees Postgres and Temporal, /metrics exposes API latency, ingestion and business state', async () => {
  const anonymous = createMeterloopClient({ baseUrl, fetch: contractCheckingFetch(meterloopDocument) });
  const ready = await anonymous.GET('/readyz'); // public, like /healthz
  expect(ready.response.status).toBe(200);
  expect(ready.data).toMatchObject({ status: 'ready', checks: { postgres: { ok: true }, temporal: { ok: true } } });
  expect((await anonymous.GET('/healthz')).response.status).toBe(200);

  expect((await anonymous.GET('/metrics', { parseAs: 'text' })).response.status).toBe(401); // scraping needs a monitoring key
  const scrape = await anonymous.GET('/metrics', { parseAs: 'text', headers: { authorization: monitoringAuthorization } });
  expect(scrape.response.status).toBe(200);
  expect(scrape.response.headers.get('content-type')).toContain('text/plain');
  const text = scrape.data as unknown as string;
  // The tests above ingested 3,000 events, billed invoices and paid them; requests are labelled by route template.
  expect(text).toMatch(/^meterloop_usage_events_ingested_total 3000$/m);
  expect(text).toMatch(/^meterloop_invoices\{kind="period",status="paid"\} [1-9]\d*$/m);
  expect(text).toMatch(/^meterloop_payments\{status="succeeded"\} [1-9]\d*$/m);
  expect(text).toMatch(/^meterloop_subscriptions\{status="canceled"\} [1-9]\d*$/m);
  expect(text).toMatch(/^meterloop_http_request_duration_seconds_count\{method="POST",route="\/v1\/events",status="200"\} 3$/m);
  expect(text).toContain('route="/v1/subscriptions/:id"');
  expect(text).not.toMatch(/route="\/v1\/subscriptions\/[0-9a-f]{8}-/);
});

test('a plan upgrade over HTTP shows in the search attributes; a rejected one leaves the history untouched', async () => {
  await meterloop.POST('/v1/plans', { body: { code: 'e2e-basic', name: 'Basic', currency: 'USD', billing_interval: 'PT1H', flat_fee: '10.00' } });
  await meterloop.POST('/v1/plans', { body: { code: 'e2e-pro', name: 'Pro', currency: 'USD', billing_interval: 'PT1H', flat_fee: '30.00' } });
  const customer = await meterloop.POST('/v1/customers', { body: { external_id: 'e2e-upgrader', name: 'Upgrader', currency: 'USD', payment_method: 'pm_sandbox_ok' } });
  const customerId = customer.data!.id;
  const subscription = await meterloop.POST('/v1/subscriptions', { body: { customer_id: customerId, plan_code: 'e2e-basic' } });
  const subscriptionId = subscription.data!.id;
  const path = { id: subscriptionId };
  const handle = temporal.workflow.getHandle(`subscription:${subscriptionId}`);
  await eventually(async () => ((await liveState(subscriptionId))?.lastInvoice?.status === 'paid' ? true : undefined), 'the first invoice paid');

  // Rejected by the workflow's validator (not paused): a real server keeps no trace of a rejected update.
  const historyBefore = (await handle.fetchHistory()).events!.length;
  const rejected = await meterloop.POST('/v1/subscriptions/{id}/resume', { params: { path }, body: {} });
  expect([rejected.response.status, rejected.error?.code]).toEqual([409, 'subscription_not_paused']);
  expect((await handle.fetchHistory()).events!.length).toBe(historyBefore);

  const upgraded = await meterloop.POST('/v1/subscriptions/{id}/plan-change', { params: { path }, body: { plan_code: 'e2e-pro', effective: 'immediate' } });
  expect(upgraded.response.status).toBe(200);
  expect(upgraded.data).toMatchObject({ effective: 'immediate', plan_code: 'e2e-pro' });
  expect(upgraded.data!.invoice!.total).toMatch(/^\d+\.\d{2}$/);
  const listed = await eventually(async () => {
    for await (const execution of temporal.workflow.list({ query: `BillingPlanCode = 'e2e-pro' AND BillingCustomerId = '${customerId}'` })) {
      return execution;
    }
    return undefined;
  }, 'the new plan in visibility');
  expect(listed.workflowId).toBe(`subscription:${subscriptionId}`);
  await meterloop.POST('/v1/subscriptions/{id}/cancel', { params: { path }, body: { at: 'now', reason: 'e2e done' } });
  await handle.result();
});
