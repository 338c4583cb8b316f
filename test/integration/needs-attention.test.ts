/**
 * A billing step that fails deterministically stops visibly (needs_attention) instead of retrying forever, refuses
 * updates it could not honour, and resumes from that step when ops retry after fixing the data. A transient
 * failure still retries with backoff and never needs attention. Real Postgres, real time-skipping Temporal server.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { CLASSIFIED_ACTIVITIES, createActivities } from '../../activities';
import { classifyActivityFailures } from '../../activities/failures';
import { createPeriodOpeningActivities } from '../../activities/period-opening';
import { createApp } from '../../api/app';
import type { PeriodInvoiceRequest } from '../../contract/invoicing';
import type { SpendingCheckRequest } from '../../contract/usage';
import { RatingError } from '../../domain/rating';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { SEARCH_ATTRIBUTES, SUBSCRIPTION_WORKFLOW_TYPE, SubscriptionState, subscriptionStateQuery, TASK_QUEUE, usageRecordedSignal } from '../../workflows/definitions';
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
let monitoring: { authorization: string };
/** Subscription id -> how many more times createPeriodInvoice fails with a lost connection before it runs. */
const connectionDrops = new Map<string, number>();
const invoiceCalls = new Map<string, number>();
/** Subscriptions whose plan rates their usage into a RatingError (a percentage charge on a sum metric). */
const misratedPlans = new Set<string>();

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  const activities = createActivities({ db, gateway: new SandboxGateway(db) });
  const stubbed = {
    ...activities,
    // The real activity, behind a connection that drops the first few calls (as a Postgres failover would).
    async createPeriodInvoice(request: PeriodInvoiceRequest) {
      invoiceCalls.set(request.subscriptionId, (invoiceCalls.get(request.subscriptionId) ?? 0) + 1);
      const drops = connectionDrops.get(request.subscriptionId) ?? 0;
      if (drops > 0) {
        connectionDrops.set(request.subscriptionId, drops - 1);
        throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
      }
      return activities.createPeriodInvoice(request);
    },
    async checkSpending(request: SpendingCheckRequest) {
      if (misratedPlans.has(request.subscriptionId)) throw new RatingError('event_count_mismatch', 'percentage pricing needs one value per event: 3 events, 0 values');
      return activities.checkSpending(request);
    },
  };
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    // Classified like the worker's own activities, so the stubs below fail the way real ones do. The period's
    // opening (one activity for close, invoice and first charge) runs the stubbed invoice step too.
    activities: classifyActivityFailures({ ...stubbed, ...createPeriodOpeningActivities(stubbed) }, CLASSIFIED_ACTIVITIES),
  });
  workerRun = worker.run();
  api = await serve(createApp({ db, temporal: env.client, now: () => new Date() }), { headers: (await createTestApiKey(db, 'admin')).headers });
  finance = (await createTestApiKey(db, 'finance')).headers;
  monitoring = (await createTestApiKey(db, 'monitoring')).headers;

  expect((await api.call('POST', '/v1/metrics', { code: 'tokens', name: 'Tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens' })).status).toBe(201);
  const plan = await api.call('POST', '/v1/plans', {
    code: 'metered',
    name: 'Metered',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '10.00',
    usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'tokens', price: { model: 'per_unit', unitPrice: '0.001' } }],
  });
  expect(plan.status).toBe(201);
});

afterAll(async () => {
  await api?.close();
  worker?.shutdown();
  await workerRun;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

async function subscribe(externalId: string, startAt: string): Promise<{ id: string; customerId: string; handle: WorkflowHandle }> {
  const customer = await api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'metered', start_at: startAt });
  expect(subscription.status).toBe(201);
  return { id: subscription.json.id, customerId: customer.json.id, handle: env.client.workflow.getHandle(`subscription:${subscription.json.id}`) };
}

async function skipTo(instant: string): Promise<void> {
  const target = new Date(instant).getTime();
  const now = await env.currentTimeMs();
  if (target > now) await env.sleep(target - now);
}

const stateOf = (handle: WorkflowHandle): Promise<SubscriptionState> => handle.query(subscriptionStateQuery);
const periodInvoices = (subscriptionId: string): Promise<InvoiceRow[]> => db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).orderBy('period_start');
const outboxOf = (subscriptionId: string, eventType: string) => db('outbox').where({ aggregate_id: subscriptionId, event_type: eventType }).orderBy('id');

test('an invoice line Postgres cannot hold stops billing visibly; after the fix and a retry the period is billed once and billing goes on', async () => {
  // Timeline (UTC, 2032):
  //   Mar 1            P0 opens: INV 10.00 (flat fee in advance)
  //   Mar 10           bad data straight in Postgres: 999,999,999,999 tokens (the most one event may carry) and a
  //                    unit price of 10,000,000: the usage line's amount has more integer digits than a line holds
  //   Apr 1 01:00      P0 usage closes; the P1 invoice fails: numeric field overflow -> needs_attention
  //                    cancel now -> 409 subscription_needs_attention; a retry before the fix fails again
  //   (ops fix)        the price goes back to 0.001, the event and the closed total become 5,000 tokens;
  //                    retry -> INV P1 = 10.00 + 5.00, active
  //   May 1 01:00      INV P2 = 10.00, as usual
  const { id, customerId, handle } = await subscribe('poisoned', '2032-03-01T00:00:00Z');
  await skipTo('2032-03-02T00:00:00Z');
  expect(await periodInvoices(id)).toHaveLength(1);
  await db('usage_events').insert({
    customer_id: customerId,
    event_id: 'huge',
    event_type: 'llm.request',
    occurred_at: new Date('2032-03-10T00:00:00Z'),
    properties: { tokens: '999999999999' },
  });
  const setUnitPrice = (price: string) => db('plans').where({ code: 'metered' }).update({ charges: db.raw(`jsonb_set(charges, '{0,price,unitPrice}', ?::jsonb)`, [JSON.stringify(price)]) });
  await setUnitPrice('10000000');

  // To the grace window's end and no further: before this change the invoice step retried forever there, the
  // server never went idle and skipping further would hang instead of failing.
  await skipTo('2032-04-01T01:00:00Z');
  let last: SubscriptionState | undefined;
  const stuck = await eventually(async () => {
    const state = await stateOf(handle);
    last = state;
    return state.status === 'needs_attention' && state;
  }, () => `the subscription to need attention: ${JSON.stringify(last)}`);
  expect(stuck.attention).toMatchObject({ step: 'create_period_invoice', errorType: 'numeric_field_overflow', failures: 1, retrying: false });
  expect(stuck.timeline.at(-1)).toMatchObject({ event: 'status:needs_attention', detail: expect.stringContaining('numeric_field_overflow') });
  expect((await db('subscriptions').where({ id }).first()).status).toBe('needs_attention');
  const description = await handle.describe();
  expect(description.status.name).toBe('RUNNING');
  expect(description.typedSearchAttributes.get(SEARCH_ATTRIBUTES.status)).toBe('needs_attention');
  const [alert] = await outboxOf(id, 'subscription.needs_attention');
  expect(alert.payload).toMatchObject({ subscriptionId: id, status: 'needs_attention', reason: expect.stringContaining('create_period_invoice failed (numeric_field_overflow)') });
  const metrics = await api.call('GET', '/metrics', undefined, monitoring);
  expect(metrics.text).toContain('meterloop_subscriptions{status="needs_attention"} 1');
  expect(await periodInvoices(id)).toHaveLength(1);

  // Reproduction 2: a cancellation that could never take effect is refused, not answered "canceled".
  const cancel = await api.call('POST', `/v1/subscriptions/${id}/cancel`, { at: 'now', reason: 'too expensive' });
  expect(cancel.status).toBe(409);
  expect(cancel.type).toContain('application/problem+json');
  expect(cancel.json.code).toBe('subscription_needs_attention');
  expect((await api.call('POST', `/v1/subscriptions/${id}/pause`, {})).json.code).toBe('subscription_needs_attention');
  // Refused for now, not for good: it says when to try again, and its Idempotency-Key is not spent on the refusal.
  const pauseKey = { 'Idempotency-Key': 'poisoned-pause' };
  const refusedPause = await api.call('POST', `/v1/subscriptions/${id}/pause`, {}, pauseKey);
  expect([refusedPause.status, refusedPause.json.code]).toEqual([409, 'subscription_needs_attention']);
  expect(refusedPause.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);
  expect((await db('subscriptions').where({ id }).first()).status).toBe('needs_attention');
  expect(await stateOf(handle)).toMatchObject({ status: 'needs_attention', pendingCancellation: null });

  // A retry before the data is fixed fails the same way: still needs attention, alerted again.
  const early = await api.call('POST', `/v1/subscriptions/${id}/retry`, {}, finance);
  expect(early.status).toBe(202);
  expect(early.json).toEqual({ status: 'needs_attention', retrying_step: 'create_period_invoice' });
  await eventually(async () => (await stateOf(handle)).attention?.failures === 2, 'the early retry to fail again');
  expect(await outboxOf(id, 'subscription.needs_attention')).toHaveLength(2);
  expect((await stateOf(handle)).attention?.retrying).toBe(false);

  // Ops fix the data (the price, the event and the period's closed total), then retry.
  await setUnitPrice('0.001');
  await db('usage_events').where({ customer_id: customerId, event_id: 'huge' }).update({ properties: { tokens: '5000' } });
  await db('usage_period_closures')
    .where({ subscription_id: id, period_start: new Date('2032-03-01T00:00:00Z') })
    .update({ totals: db.raw(`jsonb_set(totals, '{tokens,quantity}', '"5000"')`) });
  expect((await api.call('POST', `/v1/subscriptions/${id}/retry`, {}, finance)).status).toBe(202);
  await eventually(async () => (await stateOf(handle)).status === 'active', 'the retried step to succeed');
  expect((await stateOf(handle)).attention).toBeNull();
  expect((await db('subscriptions').where({ id }).first()).status).toBe('active');
  expect((await handle.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.status)).toBe('active');
  expect((await api.call('POST', `/v1/subscriptions/${id}/retry`, {}, finance)).json.code).toBe('no_failed_step');

  await skipTo('2032-05-01T02:00:00Z');
  await eventually(async () => (await periodInvoices(id)).length === 3, 'the May invoice');
  const invoices = await periodInvoices(id);
  expect(invoices.map((invoice) => [invoice.period_start.toISOString().slice(0, 10), invoice.total, invoice.status])).toEqual([
    ['2032-03-01', '10.000000000000', 'paid'],
    ['2032-04-01', '15.000000000000', 'paid'],
    ['2032-05-01', '10.000000000000', 'paid'],
  ]);
  expect((await stateOf(handle)).status).toBe('active');

  // The pause refused while billing waited for ops, sent again with its key once fixed, is made (before, the stored
  // 409 was replayed to it for 24 hours).
  const retriedPause = await api.call('POST', `/v1/subscriptions/${id}/pause`, {}, pauseKey);
  expect([retriedPause.status, retriedPause.json.status, retriedPause.headers.get('idempotent-replayed')]).toEqual([200, 'paused', null]);
});

test('a lost database connection is retried with backoff and never needs attention', async () => {
  const { id, handle } = await subscribe('flaky', '2032-06-01T00:00:00Z');
  connectionDrops.set(id, 2);
  await skipTo('2032-06-01T00:00:01Z');
  await eventually(async () => (await periodInvoices(id)).length === 1, 'the first invoice despite two lost connections');
  expect(invoiceCalls.get(id)).toBe(3);
  const state = await stateOf(handle);
  expect(state.status).toBe('active');
  expect(state.attention).toBeNull();
  expect(state.timeline.map((entry) => entry.event)).not.toContain('status:needs_attention');
  expect(await outboxOf(id, 'subscription.needs_attention')).toHaveLength(0);
});

test('retry is for ops: the product key may not call it, and nothing waits on an active subscription', async () => {
  const { id } = await subscribe('healthy', '2032-07-01T00:00:00Z');
  const app = (await createTestApiKey(db, 'app')).headers;
  expect((await api.call('POST', `/v1/subscriptions/${id}/retry`, {}, app)).status).toBe(403);
  const none = await api.call('POST', `/v1/subscriptions/${id}/retry`, {}, finance);
  expect(none.status).toBe(409);
  expect(none.json.code).toBe('no_failed_step');
});

test('a spending check that cannot rate the usage needs attention too; every update it could not honour is refused until the retry', async () => {
  const { id, handle } = await subscribe('misrated', '2032-08-01T00:00:00Z');
  await skipTo('2032-08-02T00:00:00Z');
  await eventually(async () => (await stateOf(handle)).status === 'active', 'the subscription to start');
  misratedPlans.add(id);
  await handle.signal(usageRecordedSignal, { eventCount: 3, latestEventAt: '2032-08-01T12:00:00Z' });
  const stuck = await eventually(async () => {
    const state = await stateOf(handle);
    return state.status === 'needs_attention' && state;
  }, 'the spending check to need attention');
  expect(stuck.attention).toMatchObject({ step: 'check_spending', errorType: 'event_count_mismatch' });
  expect((await handle.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.status)).toBe('needs_attention');

  for (const [path, body] of [
    ['cancel', { at: 'period_end', reason: 'moving on' }],
    ['cancel', { at: 'now', reason: 'moving on' }],
    ['pause', {}],
  ] as const) {
    const refused = await api.call('POST', `/v1/subscriptions/${id}/${path}`, body);
    expect([path, refused.status, refused.json.code]).toEqual([path, 409, 'subscription_needs_attention']);
  }
  expect(await stateOf(handle)).toMatchObject({ status: 'needs_attention', pendingCancellation: null, pausedUntil: null });

  misratedPlans.delete(id);
  expect((await api.call('POST', `/v1/subscriptions/${id}/retry`, {}, finance)).json).toEqual({ status: 'needs_attention', retrying_step: 'check_spending' });
  await eventually(async () => (await stateOf(handle)).status === 'active', 'the retried spending check to pass');
  expect((await db('subscriptions').where({ id }).first()).status).toBe('active');
  expect((await api.call('POST', `/v1/subscriptions/${id}/cancel`, { at: 'period_end', reason: 'moving on' })).json.status).toBe('pending_cancellation');
});

test('the same class of bug: a suspended subscription refuses a cancellation at period end (no period ever ends there), and cancels now', async () => {
  // Timeline (2033): Jan 1 the card declines; retries Jan 2 and Jan 5 decline -> suspended, waiting for a new card.
  // Before: cancel at period end answered 200 pending_cancellation, unblocked usage, and never took effect.
  const plan = await insertPlan(db, { code: 'suspends', billing_interval: 'P1M', flat_fee: '50.00', settings: { dunning: { retryAfter: ['P1D', 'P3D'], finalAction: 'suspend' } } });
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declined' });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2033-01-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await skipTo('2033-01-06T00:00:00Z');
  await eventually(async () => (await stateOf(handle)).status === 'suspended', 'dunning to suspend the subscription');

  const atPeriodEnd = await api.call('POST', `/v1/subscriptions/${row.id}/cancel`, { at: 'period_end', reason: 'done' });
  expect([atPeriodEnd.status, atPeriodEnd.json.code]).toEqual([409, 'subscription_suspended']);
  expect(await stateOf(handle)).toMatchObject({ status: 'suspended', pendingCancellation: null });
  expect((await db('subscriptions').where({ id: row.id }).first()).usage_blocked).toBe(true);

  const now = await api.call('POST', `/v1/subscriptions/${row.id}/cancel`, { at: 'now', reason: 'done' });
  expect(now.json.status).toBe('canceled');
  await eventually(async () => (await db('subscriptions').where({ id: row.id }).first()).status === 'canceled', 'the cancellation to take effect');
});
