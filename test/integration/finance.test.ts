/**
 * Finance on a time-skipping Temporal server and a real Postgres: manual re-rating with approval (adjustment
 * invoice, credit note, rejection, nothing to do twice) and spending alerts raised once per threshold.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import type { PlanSettings } from '../../domain/plan-terms';
import type { Charge } from '../../domain/rating';
import type { Database } from '../../store/database';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import type { PlanRow } from '../../store/catalog';
import { insertUsageEvents } from '../../store/usage';
import { SUBSCRIPTION_WORKFLOW_TYPE, SubscriptionState, subscriptionStateQuery, TASK_QUEUE, usageRecordedSignal } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { settledRerate } from '../support/rerate';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;
let serveForgetful: () => Promise<TestHttp>;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
  await db('billable_metrics').insert({ code: 'calls', name: 'API calls', event_type: 'api.call', aggregation: 'count' });
  // The API judges event timestamps by the test server's clock.
  let serverNow = await stack.now();
  advanceTo = async (instant) => {
    await stack.advanceTo(instant);
    serverNow = await stack.now();
  };
  const headers = (await createTestApiKey(db, 'admin')).headers;
  api = await serve(createApp({ db, temporal: env.client, now: () => serverNow }), { headers });
  // The same app with Idempotency-Keys expiring at once: what a key's derived identity alone protects.
  serveForgetful = () => serve(createApp({ db, temporal: env.client, now: () => serverNow, idempotency: { expireAfterMs: 0 } }), { headers });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

let advanceTo: (instant: string) => Promise<void>;

async function plan(code: string, settings: PlanSettings, charges: Charge[], flatFee = '10.00'): Promise<PlanRow> {
  return insertPlan(db, { code, name: code, billing_interval: 'P1M', flat_fee: flatFee, settings: settings as Record<string, unknown>, charges: charges as unknown[] });
}

const calls = (unitPrice: string): Charge[] => [{ metricCode: 'calls', price: { model: 'per_unit', unitPrice } }];

async function usage(customerId: string, prefix: string, count: number, at: string): Promise<void> {
  await insertUsageEvents(
    db,
    Array.from({ length: count }, (_, i) => ({ customerId, eventId: `${prefix}-${i}`, eventType: 'api.call', occurredAt: new Date(at), properties: {} })),
  );
}

const money = (value: string): string => Number(value).toFixed(2);

test('re-rating: late usage is billed by an adjustment, a lower corrected price by a credit note, each once', async () => {
  // Timeline (2027): Jan 1 start, 10.00/month + calls at 0.10.
  //   Jan 15   100 calls                               -> Feb 1 invoice: 10.00 + 10.00 = 20.00 (paid)
  //   Feb 1 01:00 January closes; Feb 3: 20 calls stamped Jan 20 arrive late (listed, not billed)
  //   Feb 4    re-rate with late usage: proposal +2.00 (20 x 0.10) -> approved -> adjustment invoice 2.00, paid
  //   Feb 4    re-rate again: nothing to do
  //   Feb 5    re-rate at a corrected price 0.08: 120 x 0.08 = 9.60 vs 12.00 billed -> credit note 2.40, refunded
  //   Feb 6    another proposal, rejected: nothing changes
  const pricing = await plan('rerate-2027', { usageGracePeriod: 'PT1H' }, calls('0.10'));
  const corrected = await insertPlan(db, { code: 'rerate-2027', version: 2, name: 'rerate-2027', billing_interval: 'P1M', flat_fee: '10.00', charges: calls('0.08') as unknown[] });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, pricing, new Date('2027-01-01T00:00:00Z'));
  await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await advanceTo('2027-01-16T00:00:00Z');
  await usage(customer.id, 'jan', 100, '2027-01-15T00:00:00Z');
  await advanceTo('2027-02-03T00:00:00Z');
  await usage(customer.id, 'late', 20, '2027-01-20T00:00:00Z');
  const invoices = await db<InvoiceRow>('invoices').where({ subscription_id: row.id }).orderBy('period_start');
  const february = invoices[1];
  expect([money(february.total), february.status]).toEqual(['20.00', 'paid']);
  expect((await api.call('GET', `/v1/subscriptions/${row.id}/late-usage`)).json.data).toHaveLength(20);

  await advanceTo('2027-02-04T00:00:00Z');
  const first = await api.call('POST', `/v1/invoices/${february.id}/rerate`, { reason: 'late events from the EU region', include_late_usage: true });
  expect(first.status).toBe(202);
  expect(await settledRerate(env.connection, first.json.id, (state) => state.status === 'proposed')).toMatchObject({ outcome: 'adjustment', total: '2.00' });
  const approved = await api.call('POST', `/v1/rerates/${first.json.id}/approve`, { reason: 'checked with the customer' });
  expect(approved.json).toMatchObject({ status: expect.stringMatching(/approved|finalized/), proposal: { total: '2.00', late_events: 20 } });
  const done = await settledRerate(env.connection, first.json.id, (state) => state.status === 'finalized');
  const adjustment = (await db<InvoiceRow>('invoices').where({ id: done.resultInvoiceId! }).first())!;
  await advanceTo('2027-02-04T01:00:00Z');
  expect([adjustment.kind, money(adjustment.total)]).toEqual(['adjustment', '2.00']);
  expect((await db<InvoiceRow>('invoices').where({ id: adjustment.id }).first())!.status).toBe('paid');
  expect(await db<InvoiceLineRow>('invoice_lines').where({ invoice_id: adjustment.id }).select('kind', 'metric_code', 'amount')).toEqual([
    { kind: 'usage', metric_code: 'calls', amount: '2.000000000000' },
  ]);
  expect((await api.call('GET', `/v1/subscriptions/${row.id}/late-usage`)).json.data).toHaveLength(0);
  expect(money((await db<InvoiceRow>('invoices').where({ id: february.id }).first())!.total)).toBe('20.00'); // never edited

  const again = await api.call('POST', `/v1/invoices/${february.id}/rerate`, { reason: 'double check', include_late_usage: true }, { 'idempotency-key': 'finance-double-check' });
  expect(await settledRerate(env.connection, again.json.id, (state) => state.status !== 'computing')).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
  // The re-rating's id derives from its Idempotency-Key: once the key has expired, the route finds that re-rating
  // and answers with it only for the same invoice and terms.
  const forgetful = await serveForgetful();
  try {
    const otherTerms = await forgetful.call('POST', `/v1/invoices/${february.id}/rerate`, { reason: 'double check' }, { 'idempotency-key': 'finance-double-check' });
    expect(otherTerms).toMatchObject({ status: 409, json: { code: 'idempotency_key_reused' } });
    expect((await forgetful.call('POST', `/v1/invoices/${february.id}/rerate`, { reason: 'double check', include_late_usage: true }, { 'idempotency-key': 'finance-double-check' })).json.id).toBe(again.json.id);
  } finally {
    await forgetful.close();
  }

  await advanceTo('2027-02-05T00:00:00Z');
  const cheaper = await api.call('POST', `/v1/invoices/${february.id}/rerate`, { reason: 'price was lowered on Jan 1', plan_code: 'rerate-2027', plan_version: 2 });
  expect(await settledRerate(env.connection, cheaper.json.id, (state) => state.status === 'proposed')).toMatchObject({ outcome: 'credit', total: '-2.40' });
  await api.call('POST', `/v1/rerates/${cheaper.json.id}/approve`, { reason: 'approved by finance lead' });
  const credited = await settledRerate(env.connection, cheaper.json.id, (state) => state.status === 'finalized');
  const creditNote = (await db<InvoiceRow>('invoices').where({ id: credited.resultInvoiceId! }).first())!;
  expect([creditNote.kind, money(creditNote.total)]).toEqual(['credit_note', '2.40']);
  await advanceTo('2027-02-05T00:10:00Z');
  expect((await db('refunds').where({ credit_note_id: creditNote.id }).first()).status).toBe('succeeded'); // through the gateway
  expect(corrected.version).toBe(2);

  await advanceTo('2027-02-06T00:00:00Z');
  const before = { invoices: await db('invoices').count('* as n'), lines: await db('invoice_lines').count('* as n'), unclaimed: await db('usage_events').whereNull('period_close_id').count('* as n') };
  await usage(customer.id, 'late2', 5, '2027-01-25T00:00:00Z');
  const rejected = await api.call('POST', `/v1/invoices/${february.id}/rerate`, { reason: 'more late events', include_late_usage: true });
  await settledRerate(env.connection, rejected.json.id, (state) => state.status === 'proposed');
  expect((await api.call('POST', `/v1/rerates/${rejected.json.id}/reject`, { reason: 'wait for the full batch' })).json.status).toBe('rejected');
  expect({ invoices: await db('invoices').count('* as n'), lines: await db('invoice_lines').count('* as n') }).toEqual({ invoices: before.invoices, lines: before.lines });
  expect(await db('usage_events').whereNull('period_close_id').count('* as n')).toEqual([{ n: String(Number(before.unclaimed[0].n) + 5) }]);
  const audit = await db('audit_log').where({ subject_id: february.id }).orderBy('id').pluck('action');
  expect(audit).toEqual(expect.arrayContaining(['rerate.requested', 'rerate.proposed', 'rerate.approved', 'rerate.finalized', 'rerate.nothing_to_do', 'rerate.rejected']));
  await env.client.workflow.getHandle(workflowId).terminate('test done');
});

test('spending alerts fire once per threshold per period however many usage summaries arrive; a hard cap stops usage', async () => {
  // Timeline (2028): Mar 1 start; 20.00 of included usage (calls at 0.10), alerts at 50 % and 100 %, hard cap 25.00.
  //   Mar 5  120 calls = 12.00 (60 %) and five summaries -> one 50 % alert
  //   Mar 6   90 calls -> 21.00 (105 %) and five summaries -> one 100 % alert
  //   Mar 7   50 calls -> 26.00, past the cap: ingestion refuses further usage with usage_cap_reached
  const hybrid = await plan('alerts-2028', { creditBucket: '20.00', creditAlertThresholds: ['50', '100'], hardCap: '25.00' }, calls('0.10'));
  const customer = await insertCustomer(db, { external_id: 'alerts-2028' });
  const { row, input, workflowId } = await insertSubscription(db, customer, hybrid, new Date('2028-03-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  const summaries = async (count: number) => {
    for (let i = 0; i < count; i += 1) await handle.signal(usageRecordedSignal, { eventCount: 1, latestEventAt: new Date(await env.currentTimeMs()).toISOString() });
    await env.sleep(60_000);
  };

  await advanceTo('2028-03-05T00:00:00Z');
  await usage(customer.id, 'a', 120, '2028-03-04T00:00:00Z');
  await summaries(5);
  await advanceTo('2028-03-06T00:00:00Z');
  await usage(customer.id, 'b', 90, '2028-03-05T12:00:00Z');
  await summaries(5);
  const alerts = await db('spending_alerts').where({ subscription_id: row.id }).orderBy('id').select('basis', 'threshold', 'spend');
  expect(alerts.map((alert) => [alert.basis, alert.threshold, money(alert.spend)])).toEqual([
    ['credit_bucket', '50', '12.00'],
    ['credit_bucket', '100', '21.00'],
  ]);
  expect(await db('outbox').where({ event_type: 'spending.threshold_reached', aggregate_id: row.id })).toHaveLength(2);

  await advanceTo('2028-03-07T00:00:00Z');
  await usage(customer.id, 'c', 50, '2028-03-06T12:00:00Z');
  await summaries(1);
  const state: SubscriptionState = await handle.query(subscriptionStateQuery);
  expect(state.timeline.map((entry) => entry.event)).toContain('usage_capped');
  const refused = await api.call('POST', '/v1/events', { id: 'over-cap', customer: 'alerts-2028', type: 'api.call', timestamp: new Date(await env.currentTimeMs()).toISOString(), properties: {} });
  expect(refused.json.errors).toEqual([expect.objectContaining({ index: 0, code: 'usage_cap_reached' })]);
  await handle.terminate('test done');
});
