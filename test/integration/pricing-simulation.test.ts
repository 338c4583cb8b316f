/**
 * The pricing simulation (scripts/simulation/) against the system itself: the same catalog and usage, once through
 * the simulation, once driven through the HTTP API and a worker on a time-skipping server as a client would (events
 * posted as their time comes, a cancellation at period end), must give the same invoices.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createApp } from '../../api/app';
import { formatMoney, sumMoney, toDecimal } from '../../domain/money';
import { addIntervals, parseInterval } from '../../domain/periods';
import type { Database } from '../../store/database';
import { createBillingWorker } from '../../worker/create-worker';
import type { CatalogFile } from '../../scripts/simulation/catalog';
import { shiftYearsFor, simulate, SimulationResult } from '../../scripts/simulation/simulate';
import { SimulationStack, startSimulationStack } from '../../scripts/simulation/stack';
import { parseUsageCsv } from '../../scripts/simulation/usage';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { Json, serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

const CATALOG: CatalogFile = {
  metrics: [
    { code: 'tokens', name: 'Tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens', unit_cost: '0.00002' },
    { code: 'tickets', name: 'Resolved tickets', event_type: 'ticket.resolved', aggregation: 'count', unit_cost: '0.40' },
  ],
  plans: [
    {
      code: 'flat-30',
      name: 'Flat 30',
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: '30.00',
      charges: [
        { metric_code: 'tokens', price: { model: 'per_unit', unitPrice: '0' } },
        { metric_code: 'tickets', price: { model: 'per_unit', unitPrice: '0' } },
      ],
    },
    {
      code: 'metered',
      name: 'Metered',
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: '10.00',
      credit_bucket: '5.00',
      charges: [
        { metric_code: 'tokens', price: { model: 'per_unit', unitPrice: '0.0001' } },
        { metric_code: 'tickets', price: { model: 'per_unit', unitPrice: '0.50' } },
      ],
    },
  ],
};

// Recorded usage from the past (2025): the simulation replays it some years later, where the servers' clocks are.
const USAGE_CSV = `timestamp,type,properties
2025-01-10T08:00:00Z,llm.request,"{""tokens"":40000}"
2025-01-20T09:00:00Z,ticket.resolved,
2025-01-31T23:59:59Z,llm.request,"{""tokens"":20000}"
2025-02-01T00:00:00Z,llm.request,"{""tokens"":30000}"
2025-02-14T10:00:00Z,ticket.resolved,{}
2025-02-14T11:00:00Z,ticket.resolved,{}
2025-03-05T12:00:00Z,llm.request,"{""tokens"":100000}"
2025-03-31T12:00:00Z,ticket.resolved,{}
2025-04-02T00:00:00Z,llm.request,"{""tokens"":999}"
`;
const START = new Date('2025-01-01T00:00:00Z');
const PERIODS = 3;
const MONTH = parseInterval('P1M');
const DAY_MS = 86_400_000;

let stack: SimulationStack;
let env: TestWorkflowEnvironment;
let db: Database;
let worker: Worker;
let workerRun: Promise<void>;
let api: TestHttp;
let serverNow = new Date();

beforeAll(async () => {
  const bundle = await workflowBundle();
  [stack, env, db] = await Promise.all([
    startSimulationStack({ postgresServerUrl: process.env.TEST_POSTGRES_URL!, workflowBundle: bundle }),
    createTimeSkippingEnvironment(),
    createTestDatabase(),
  ]);
  worker = await createBillingWorker({ connection: env.nativeConnection, db, workflowBundle: bundle });
  workerRun = worker.run();
  api = await serve(createApp({ db, temporal: env.client, now: () => serverNow, log: () => undefined }), { headers: (await createTestApiKey(db, 'admin')).headers });
});

afterAll(async () => {
  await api?.close();
  worker?.shutdown();
  await workerRun;
  await Promise.all([env?.teardown(), db?.destroy(), stack?.stop()]);
});

const invoiced = (invoices: { total: string }[]): string => formatMoney(sumMoney(invoices.map((invoice) => toDecimal(invoice.total))), 'USD');

/** Drives the same catalog and usage through the HTTP API as a client would, a day at a time. */
async function billThroughApi(shiftYears: number): Promise<Map<string, Json[]>> {
  const shift = (instant: Date): Date => addIntervals(instant, MONTH, 12 * shiftYears);
  const start = shift(START);
  const end = shift(addIntervals(START, MONTH, PERIODS));
  await env.sleep(start.getTime() - DAY_MS - (await env.currentTimeMs())); // nothing runs yet: jump
  for (const metric of CATALOG.metrics) expect((await api.call('POST', '/v1/metrics', metric)).status).toBe(201);
  for (const plan of CATALOG.plans) expect((await api.call('POST', '/v1/plans', plan)).status).toBe(201);

  const events = parseUsageCsv(USAGE_CSV).filter((event) => shift(event.timestamp) < end);
  const subscriptions = new Map<string, string>();
  for (const plan of CATALOG.plans) {
    const customer = await api.call('POST', '/v1/customers', { external_id: `api-${String(plan.code)}`, name: 'API customer', currency: 'USD', payment_method: 'pm_sandbox_ok' });
    const subscription = await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: plan.code, start_at: start.toISOString() });
    expect(subscription.status).toBe(201);
    subscriptions.set(String(plan.code), subscription.json.id);
  }

  // Every day: post the events whose time has come (each plan's customer gets all of them), and once the last
  // period has opened (Mar 1 + the PT1H grace), ask each subscription to cancel at period end.
  let posted = 0;
  let canceled = false;
  const lastPeriodOpen = addIntervals(start, MONTH, PERIODS - 1).getTime() + 3_600_000;
  for (let day = 0; day < 130; day += 1) {
    serverNow = new Date(await env.currentTimeMs());
    const due = events.slice(posted).filter((event) => shift(event.timestamp) <= serverNow);
    if (due.length) {
      for (const code of subscriptions.keys()) {
        const batch = due.map((event) => ({ id: event.id, customer: `api-${code}`, type: event.type, timestamp: shift(event.timestamp).toISOString(), properties: event.properties }));
        expect((await api.call('POST', '/v1/events', { events: batch })).json).toMatchObject({ accepted: due.length, rejected: 0 });
      }
      posted += due.length;
    }
    if (!canceled && serverNow.getTime() > lastPeriodOpen) {
      for (const id of subscriptions.values()) {
        expect((await api.call('POST', `/v1/subscriptions/${id}/cancel`, { at: 'period_end', reason: 'comparison' })).json).toMatchObject({ status: 'pending_cancellation' });
      }
      canceled = true;
    }
    const statuses = await Promise.all([...subscriptions.values()].map(async (id) => (await api.call('GET', `/v1/subscriptions/${id}`)).json.status));
    if (canceled && statuses.every((status) => status === 'canceled')) break;
    await env.sleep(DAY_MS);
  }
  expect(posted).toBe(events.length);

  const invoices = new Map<string, Json[]>();
  for (const [code, id] of subscriptions) {
    const list = await api.call('GET', `/v1/invoices?subscription_id=${id}`);
    invoices.set(
      code,
      // Listed newest first; the simulation lists them in period order.
      [...list.json.data].reverse().map((invoice: Json) => ({ ...invoice, period_start: addIntervals(new Date(invoice.period_start), MONTH, -12 * shiftYears).toISOString() })),
    );
  }
  return invoices;
}

test('The simulation of a small plan comparison matches the invoices the same usage produces through the API', async () => {
  const result: SimulationResult = await simulate(stack, { catalog: { kind: 'file', catalog: CATALOG }, planCodes: ['flat-30', 'metered'], usage: parseUsageCsv(USAGE_CSV), periods: PERIODS });
  expect(result).toMatchObject({ start: '2025-01-01T00:00:00.000Z', end: '2025-04-01T00:00:00.000Z', periods: 3 });
  expect(result.shiftYears % 4).toBe(0);
  expect(result.shiftYears).toBeGreaterThan(0);
  expect(result.usage).toMatchObject({ events: 9, replayed: 8, outsideHorizon: 1, rejected: 0 });

  // By hand. Usage: Jan 60,000 tokens (the one at Jan 31 23:59:59 included) + 1 ticket; Feb 30,000 tokens (the one
  // at Feb 1 00:00:00 included) + 2 tickets; Mar 100,000 tokens + 1 ticket; the Apr 2 event is past the horizon.
  //   metered (10.00 + tokens 0.0001 + tickets 0.50, 5.00 of usage included):
  //     Jan 1   period   10.00                                               = 10.00
  //     Feb 1   period   10.00 + 6.00 + 0.50 - 5.00 credit                   = 11.50
  //     Mar 1   period   10.00 + 3.00 + 1.00 - 4.00 credit (capped at usage) = 10.00
  //     Mar 1   closing  10.00 + 0.50 - 5.00 credit (March usage)            =  5.50
  //   flat-30 (30.00, tokens and tickets metered at 0): 30.00, 30.00, 30.00, closing 0.00
  // Cost (tokens 0.00002, tickets 0.40), the same on both: Jan 1.20 + 0.40 = 1.60, Feb 0.60 + 0.80 = 1.40,
  // Mar 2.00 + 0.40 = 2.40, total 5.40. Revenue per period (its own fee and usage): metered Jan 10.00 + 6.00 + 0.50
  // - 5.00 = 11.50, Feb 10.00, Mar 15.50 = 37.00; flat-30 30.00 each = 90.00.
  const [flat, metered] = result.plans;
  const rows = (plan: typeof flat) => plan.periods.map((period) => [period.start.slice(0, 7), period.invoiceCount, period.invoiced, period.revenue, period.cost, period.margin]);
  expect(rows(metered)).toEqual([
    ['2025-01', 1, '10.00', '11.50', '1.60', '9.90'],
    ['2025-02', 1, '11.50', '10.00', '1.40', '8.60'],
    ['2025-03', 2, '15.50', '15.50', '2.40', '13.10'],
  ]);
  expect(metered.total).toEqual({ invoiceCount: 4, invoiced: '37.00', revenue: '37.00', cost: '5.40', margin: '31.60', marginPercent: '85.41' });
  expect(rows(flat)).toEqual([
    ['2025-01', 1, '30.00', '30.00', '1.60', '28.40'],
    ['2025-02', 1, '30.00', '30.00', '1.40', '28.60'],
    ['2025-03', 2, '30.00', '30.00', '2.40', '27.60'],
  ]);
  expect(flat.total).toMatchObject({ invoiced: '90.00', revenue: '90.00', cost: '5.40', margin: '84.60' });

  // The same usage through the API, replayed in the same years (both servers' clocks start today).
  const shiftYears = shiftYearsFor(START, new Date(await env.currentTimeMs()));
  expect(shiftYears).toBe(result.shiftYears);
  const viaApi = await billThroughApi(shiftYears);
  for (const plan of result.plans) {
    const invoices = viaApi.get(plan.planCode)!;
    expect(plan.invoices.map((invoice) => [invoice.kind, invoice.periodStart, invoice.total])).toEqual(
      invoices.map((invoice: Json) => [invoice.kind, invoice.period_start, invoice.total]),
    );
    for (const period of plan.periods) {
      const dated = invoices.filter((invoice: Json) => invoice.period_start >= period.start && invoice.period_start < period.end);
      expect([period.start.slice(0, 7), period.invoiceCount, period.invoiced]).toEqual([period.start.slice(0, 7), dated.length, invoiced(dated)]);
    }
  }
});
