/**
 * Unit economics: GET /v1/reports/margins over invoices and usage closures produced by the real workflow,
 * activities and API on a time-skipping Temporal server and a real Postgres, checked against a hand computation.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createApp } from '../../api/app';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { combinationMarginsBySubscription } from '../../store/combination-margins';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { createBillingWorker } from '../../worker/create-worker';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { Json, serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let worker: Worker;
let workerRun: Promise<void>;
let admin: TestHttp;
let finance: Record<string, string>;
let app: Record<string, string>;
let serverNow = new Date();

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  worker = await createBillingWorker({ connection: env.nativeConnection, db, workflowBundle: await workflowBundle() });
  workerRun = worker.run();
  admin = await serve(createApp({ db, temporal: env.client, now: () => serverNow, log: () => undefined }), { headers: (await createTestApiKey(db, 'admin')).headers });
  finance = (await createTestApiKey(db, 'finance')).headers;
  app = (await createTestApiKey(db, 'app')).headers;
});

afterAll(async () => {
  await admin?.close();
  worker?.shutdown();
  await workerRun;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

/** Moves server time to `instant` a day at a time, so the workflows handle every timer on the way. */
async function advanceTo(instant: string): Promise<void> {
  const target = new Date(instant).getTime();
  for (;;) {
    const now = await env.currentTimeMs();
    if (now >= target) break;
    await env.sleep(Math.min(86_400_000, target - now));
  }
  serverNow = new Date(await env.currentTimeMs());
}

async function post(path: string, body: unknown): Promise<Json> {
  const response = await admin.call('POST', path, body);
  if (response.status >= 300) throw new Error(`POST ${path}: ${response.status} ${response.text}`);
  return response.json;
}

async function subscribe(externalId: string, planCode: string): Promise<string> {
  const customer = await post('/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  return (await post('/v1/subscriptions', { customer_id: customer.id, plan_code: planCode, start_at: '2033-03-01T00:00:00Z' })).id;
}

const tokens = (customer: string, id: string, count: number) => ({ id, customer, type: 'llm.request', timestamp: '2033-03-10T12:00:00Z', properties: { tokens: count } });
const ticket = (customer: string, id: string) => ({ id, customer, type: 'ticket.resolved', timestamp: '2033-03-11T12:00:00Z', properties: {} });

test('the margin report matches a hand computation: the heavy user on the flat-rate plan loses money and comes first', async () => {
  // Costs to us: a token 0.00002, a resolved ticket 0.40. A plan meters a metric only if it has a charge for it,
  // so "unlimited" tokens are a charge at 0 (a 0.00 line on the invoice): otherwise their cost would be invisible.
  await post('/v1/metrics', { code: 'tokens', name: 'Tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens', unit_cost: '0.00002' });
  await post('/v1/metrics', { code: 'tickets', name: 'Resolved tickets', event_type: 'ticket.resolved', aggregation: 'count', unit_cost: '0.40' });
  const free = { model: 'per_unit', unitPrice: '0' };
  await post('/v1/plans', { code: 'unlimited', name: 'Unlimited', currency: 'USD', billing_interval: 'P1M', flat_fee: '49.00', charges: [{ metric_code: 'tokens', price: free }] });
  await post('/v1/plans', {
    code: 'payg',
    name: 'Pay as you go',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0.00',
    charges: [
      { metric_code: 'tokens', price: { model: 'per_unit', unitPrice: '0.00005' } },
      { metric_code: 'tickets', price: { model: 'per_unit', unitPrice: '0.99' } },
    ],
  });
  await post('/v1/plans', { code: 'hybrid', name: 'Hybrid', currency: 'USD', billing_interval: 'P1M', flat_fee: '20.00', credit_bucket: '5.00', charges: [{ metric_code: 'tokens', price: { model: 'per_unit', unitPrice: '0.00005' } }] });
  await post('/v1/plans', { code: 'free', name: 'Free', currency: 'USD', billing_interval: 'P1M', flat_fee: '0.00', charges: [{ metric_code: 'tokens', price: free }] });

  const heavy = await subscribe('heavy', 'unlimited');
  const light = await subscribe('light', 'unlimited');
  const payg = await subscribe('payg', 'payg');
  const hybrid = await subscribe('hybrid', 'hybrid');
  const freeloader = await subscribe('freeloader', 'free');

  // Timeline (2033): every subscription starts Mar 1; March usage on Mar 10-11; usage closes Apr 1 01:00 (grace
  // PT1H) onto the April invoice, which also bills April's fees in advance. Then a 4.90 refund of light's March fee.
  await advanceTo('2033-03-15T00:00:00Z');
  await post('/v1/events', {
    events: [
      ...[1, 2, 3, 4].map((n) => tokens('heavy', `h${n}`, 2_500_000)),
      tokens('light', 'l1', 100_000),
      tokens('payg', 'p1', 2_000_000),
      ...Array.from({ length: 10 }, (_, n) => ticket('payg', `t${n}`)),
      tokens('hybrid', 'y1', 50_000),
      tokens('freeloader', 'f1', 500_000),
    ],
  });
  await advanceTo('2033-04-01T02:00:00Z');
  const lightMarch = await db<InvoiceRow>('invoices').where({ subscription_id: light, kind: 'period', period_start: new Date('2033-03-01T00:00:00Z') }).first();
  expect(lightMarch?.status).toBe('paid');
  expect((await post(`/v1/invoices/${lightMarch!.id}/refunds`, { amount: '4.90', reason: 'goodwill' })).refund.status).toBe('succeeded');

  // The report for March, [2033-03-01, 2033-04-01): revenue = lines whose period_start is in March (March fees
  // from the March invoice, March usage from the April invoice; April's fees are outside), cost = March closures.
  //
  //   subscription  revenue                                   cost                                   margin   margin %
  //   heavy         49.00 fee + 0.00 tokens         =  49.00  10,000,000 x 0.00002        = 200.00  -151.00   -151/49     = -308.16
  //   freeloader    0.00 tokens                     =   0.00     500,000 x 0.00002        =  10.00   -10.00   no revenue  =    null
  //   hybrid        20.00 + 2.50 tokens - 2.50 credit = 20.00      50,000 x 0.00002        =   1.00    19.00   19/20       =   95.00
  //   light         49.00 + 0.00 - 4.90 credit note =  44.10     100,000 x 0.00002        =   2.00    42.10   42.10/44.10 =   95.46
  //   payg          2,000,000 x 0.00005 = 100.00   2,000,000 x 0.00002 = 40.00
  //                 + 10 x 0.99 = 9.90              =  109.90  + 10 x 0.40 = 4.00           =  44.00    65.90   65.90/109.90 =  59.96
  //   USD total                                       223.00                                  257.00   -34.00   -34/223     =  -15.25
  const march = await admin.call('GET', '/v1/reports/margins?from=2033-03-01T00:00:00Z&to=2033-04-01T00:00:00Z', undefined, finance);
  expect(march.status).toBe(200);
  const rows = march.json.data.map((row: Json) => [row.customer.external_id, row.revenue, row.cost, row.margin, row.margin_percent]);
  expect(rows).toEqual([
    ['heavy', '49.00', '200.00', '-151.00', '-308.16'],
    ['freeloader', '0.00', '10.00', '-10.00', null],
    ['hybrid', '20.00', '1.00', '19.00', '95.00'],
    ['light', '44.10', '2.00', '42.10', '95.46'],
    ['payg', '109.90', '44.00', '65.90', '59.96'],
  ]);
  expect(march.json.data[0]).toMatchObject({
    subscription_id: heavy,
    plan: { code: 'unlimited', version: 1 },
    currency: 'USD',
    cost_breakdown: [{ metric_code: 'tokens', quantity: '10000000', unit_cost: '0.00002', cost: '200.00' }],
  });
  expect(march.json.data[4].cost_breakdown).toEqual([
    { metric_code: 'tickets', quantity: '10', unit_cost: '0.4', cost: '4.00' },
    { metric_code: 'tokens', quantity: '2000000', unit_cost: '0.00002', cost: '40.00' },
  ]);
  expect(march.json.totals).toEqual([{ currency: 'USD', revenue: '223.00', cost: '257.00', margin: '-34.00', margin_percent: '-15.25', subscriptions: 5 }]);
  expect(new Set(march.json.data.map((row: Json) => row.subscription_id))).toEqual(new Set([heavy, light, payg, hybrid, freeloader]));

  // April so far: the fees billed in advance on Apr 1, no April usage closed yet. March usage lines on the April
  // invoice stay in March, so payg and freeloader (no fee) have nothing in April and are not listed.
  const april = await admin.call('GET', '/v1/reports/margins?from=2033-04-01T00:00:00Z&to=2033-05-01T00:00:00Z&limit=1', undefined, finance);
  expect(april.json.data.map((row: Json) => [row.customer.external_id, row.revenue, row.cost, row.margin, row.margin_percent])).toEqual([
    ['hybrid', '20.00', '0.00', '20.00', '100.00'],
  ]);
  expect(april.json.has_more).toBe(true);
  expect(april.json.totals).toEqual([{ currency: 'USD', revenue: '118.00', cost: '0.00', margin: '118.00', margin_percent: '100.00', subscriptions: 3 }]);
});

test('the margin report is for finance: other roles are refused, a bad window is rejected', async () => {
  const query = '/v1/reports/margins?from=2033-03-01T00:00:00Z&to=2033-04-01T00:00:00Z';
  expect((await admin.call('GET', query, undefined, app)).status).toBe(403);
  expect((await admin.call('GET', query)).status).toBe(200); // admin
  const backwards = await admin.call('GET', '/v1/reports/margins?from=2033-04-01T00:00:00Z&to=2033-03-01T00:00:00Z', undefined, finance);
  expect(backwards).toMatchObject({ status: 422, json: { code: 'validation_failed', errors: [{ path: 'to' }] } });
  expect((await admin.call('GET', '/v1/reports/margins?from=yesterday&to=2033-03-01T00:00:00Z', undefined, finance)).status).toBe(422);
});

test('a refund counts in the period of the invoice it credits; a re-rating credit note in the usage period it corrects', async () => {
  // payg's April invoice bills March usage (109.90). A goodwill refund of 9.90 on it lands in April (the credited
  // invoice's period); a re-rating that finds 5.00 of March usage over-billed lands in March.
  const payg = await db('subscriptions as s').join('customers as c', 'c.id', 's.customer_id').where('c.external_id', 'payg').first('s.id', 's.customer_id');
  const aprilInvoice = await db<InvoiceRow>('invoices').where({ subscription_id: payg.id, kind: 'period', period_start: new Date('2033-04-01T00:00:00Z') }).first();
  expect(aprilInvoice).toMatchObject({ status: 'paid', total: '109.900000000000' });
  await post(`/v1/invoices/${aprilInvoice!.id}/refunds`, { amount: '9.90', reason: 'goodwill' });
  const rerateCredit = await post(`/v1/invoices/${aprilInvoice!.id}/refunds`, { amount: '5.00', reason: 're-rating' });
  await db('rerates').insert({
    invoice_id: aprilInvoice!.id,
    subscription_id: payg.id,
    customer_id: payg.customer_id,
    status: 'finalized',
    requested_by: 'finance',
    reason: 'tokens double-counted',
    proposal: JSON.stringify({ usagePeriod: { start: '2033-03-01T00:00:00.000Z', end: '2033-04-01T00:00:00.000Z' }, lines: [], total: '-5.00', outcome: 'credit', lateEventIds: [] }),
    result_invoice_id: rerateCredit.id,
  });

  const report = async (from: string, to: string): Promise<Json> =>
    (await admin.call('GET', `/v1/reports/margins?from=${from}&to=${to}`, undefined, finance)).json.data.find((row: Json) => row.customer.external_id === 'payg');
  // March: 109.90 - 5.00 = 104.90 revenue, cost 44.00 -> margin 60.90 (58.06 %).
  expect(await report('2033-03-01T00:00:00Z', '2033-04-01T00:00:00Z')).toMatchObject({ revenue: '104.90', cost: '44.00', margin: '60.90', margin_percent: '58.06' });
  // April: no fee, no April usage closed yet, minus the 9.90 refund: negative revenue has no percentage.
  expect(await report('2033-04-01T00:00:00Z', '2033-05-01T00:00:00Z')).toMatchObject({ revenue: '-9.90', cost: '0.00', margin: '-9.90', margin_percent: null });
});

test('per-combination revenue counts usage once when threshold invoices billed part of it', async () => {
  // A threshold invoice bills 30.00 of one combination mid-period; the period invoice rates all 50.00 of it again and
  // credits the 30.00 with a threshold_credit line. The combination earned 50.00, not 80.00.
  const customer = await insertCustomer(db, { external_id: 'thresholds-margin' });
  const plan = await insertPlan(db, { code: 'thresholds-margin', billing_interval: 'P1M', flat_fee: '0' });
  const { row: subscription } = await insertSubscription(db, customer, plan, new Date('2034-01-01T00:00:00Z'));
  const usageLine = (amount: string) => ({
    kind: 'usage', description: 'Tokens (large, output)', metric_code: 'llm_tokens', quantity: '1', amount,
    period_start: new Date('2034-01-01T00:00:00Z'), period_end: new Date('2034-02-01T00:00:00Z'), breakdown: JSON.stringify({ dimensionKey: 'model=large&direction=output' }),
  });
  const invoice = async (kind: string, total: string, lines: object[]) => {
    const threshold = kind === 'threshold' ? { threshold_index: 1, threshold_amount: '30.00' } : {};
    const [row] = await db<InvoiceRow>('invoices')
      .insert({ ...threshold, number: `TM-${kind}`, customer_id: customer.id, subscription_id: subscription.id, kind, status: 'paid', currency: 'USD', period_start: new Date('2034-01-01T00:00:00Z'), period_end: new Date('2034-02-01T00:00:00Z'), total, finalized_at: new Date() })
      .returning('*');
    await db('invoice_lines').insert(lines.map((line, position) => ({ invoice_id: row.id, position, ...line })));
  };
  await invoice('threshold', '30.00', [usageLine('30.00')]);
  await invoice('period', '20.00', [usageLine('50.00'), { kind: 'threshold_credit', description: 'Billed on threshold invoice TM-threshold', quantity: '1', amount: '-30.00', period_start: new Date('2034-01-01T00:00:00Z'), period_end: new Date('2034-02-01T00:00:00Z'), breakdown: JSON.stringify({}) }]);

  const margins = await combinationMarginsBySubscription(db, { from: new Date('2034-01-01T00:00:00Z'), to: new Date('2034-02-01T00:00:00Z') }, new Map([[subscription.id, 'USD']]));
  expect(margins.get(subscription.id)?.map((line) => [line.dimensionKey, line.revenue])).toEqual([['model=large&direction=output', '50.00']]);
});
