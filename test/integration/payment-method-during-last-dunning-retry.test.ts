/**
 * The customer replaces a declining card while dunning's last scheduled attempt is at the gateway with it. The API
 * answers 200 and wakes dunning, and the charge's decline is kept retryable for the new card (activities/payments.ts),
 * but the schedule was spent: the plan's final step followed at once, the subscription was canceled and the invoice
 * marked uncollectible with a card that could pay on file, never tried. Now one more attempt is made with the new
 * method first (workflows/subscription/collection.ts `attemptWithNewPaymentMethod`).
 *
 * Timeline (2031), 10.00 a month, the default dunning (retries after 1, 3, 5 and 7 days, then cancel):
 *   Mar 1   period invoice 10.00: attempt 1 declined (pm_sandbox_declined); attempts 2-4 Mar 2, 5, 10, declined
 *   Mar 17  attempt 5 (the last) is at the gateway with the old card when pm_sandbox_ok is posted; it declines
 *           -> attempt 6 with pm_sandbox_ok pays; the subscription is active (before: canceled, invoice uncollectible)
 * The same after a cancellation now while past due, the invoice dunned after the end (second test): the API tells the
 * ended subscription's workflow of a card posted while an attempt is at the gateway with another one
 * (store/payments.ts `dunningWorkflowIdsOfCustomer`), and `retriedUntilPaid` tries it once before giving up.
 * The new card posted together with a cancellation now during the last attempt (third test), that cancellation alone
 * (fourth), and both during a suspended subscription's attempt (fifth): the dunning after the end goes on from the
 * last attempt made (collection.ts
 * `keepAttemptsAfterTheSchedule`, patch attempts-after-the-schedule-kept), not from the schedule's last step.
 * Real API, workflow, activities and Postgres on a time-skipping Temporal server; the gateway holds attempt 5.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { CLASSIFIED_ACTIVITIES, createActivities } from '../../activities';
import { classifyActivityFailures } from '../../activities/failures';
import { createApp } from '../../api/app';
import { toDecimal } from '../../domain/money';
import { replacePaymentMethod } from '../../store/customers';
import type { ChargeRequest, ChargeResult } from '../../payments/gateway';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import { cancelSubscriptionUpdate, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertPlan } from '../support/fixtures';
import { eventually } from '../support/eventually';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;
let serverNow = new Date();
let worker: { instance: Worker; running: Promise<void> } | undefined;
/** Dunning's last scheduled attempt (the 5th), held at the gateway after its payment row took the old card. */
let held: { release: () => void } | null = null;
/** The attempt held: the 5th (the default schedule's last), or a suspended subscription's attempt. */
let heldAttempt = ':5';
/** Run right after the gateway answered the charge under this key suffix (before the activity records the answer). */
let afterCharge: { attempt: string; run: () => Promise<void> } | null = null;

class GatewayHoldingTheLastAttempt extends SandboxGateway {
  override async charge(request: ChargeRequest): Promise<ChargeResult> {
    if (request.idempotencyKey.endsWith(heldAttempt)) await new Promise<void>((resolve) => (held = { release: resolve }));
    const answer = await super.charge(request);
    if (afterCharge && request.idempotencyKey.endsWith(afterCharge.attempt)) await afterCharge.run();
    return answer;
  }
}

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  const activities = createActivities({ db, gateway: new GatewayHoldingTheLastAttempt(db) });
  const instance = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    maxCachedWorkflows: 0,
    activities: classifyActivityFailures(activities, CLASSIFIED_ACTIVITIES),
  });
  worker = { instance, running: instance.run() };
  api = await serve(createApp({ db, temporal: env.client, now: () => serverNow }), { headers: (await createTestApiKey(db, 'admin')).headers });
});

afterAll(async () => {
  held?.release();
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

test('a payment method replaced while the last dunning attempt is at the gateway is tried before the subscription is canceled', async () => {
  expect((await api.call('POST', '/v1/plans', { code: 'monthly', name: 'Monthly', currency: 'USD', billing_interval: 'P1M', flat_fee: '10.00' })).status).toBe(201);
  const customer = await api.call('POST', '/v1/customers', { external_id: 'acme', name: 'acme', currency: 'USD', payment_method: 'pm_sandbox_declined' });
  const subscriptionId: string = (await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'monthly', start_at: '2031-03-01T00:00:00Z' })).json.id;
  const handle = env.client.workflow.getHandle(`subscription:${subscriptionId}`);
  await skipTo('2031-03-01T00:01:00Z');
  await eventually(async () => (await handle.query(subscriptionStateQuery)).status === 'past_due', 'the first charge to be declined');

  // To the 5th attempt's announced instant exactly: the server does not move time while the held charge runs.
  await skipTo('2031-03-17T00:00:00Z');
  const last = await eventually(async () => (await handle.query(subscriptionStateQuery)).dunning?.nextAttemptAt, 'the last attempt to be announced');
  await skipTo(last!);
  await eventually(async () => held !== null, 'the last attempt at the gateway');
  expect((await api.call('POST', `/v1/customers/${customer.json.id}/payment-method`, { payment_method: 'pm_sandbox_ok' })).status).toBe(200);
  held!.release();
  held = null;

  const settled = await eventually(async () => {
    const state = await handle.query(subscriptionStateQuery).catch(() => null);
    const { status } = await handle.describe();
    return (status.name !== 'RUNNING' || state?.status === 'active') && { state, status: status.name };
  }, 'dunning to end');
  const invoice = await db('invoices').where({ subscription_id: subscriptionId }).first();
  const payments = await db('payments').where({ invoice_id: invoice.id }).orderBy('attempt');
  // Before: the workflow COMPLETED canceled, the invoice uncollectible, attempts 1-5 all with pm_sandbox_declined.
  expect(settled.status).toBe('RUNNING');
  expect(settled.state?.status).toBe('active');
  expect(invoice.status).toBe('paid');
  expect(payments.map((payment) => [payment.attempt, payment.payment_method, payment.status])).toEqual([
    [1, 'pm_sandbox_declined', 'failed'],
    [2, 'pm_sandbox_declined', 'failed'],
    [3, 'pm_sandbox_declined', 'failed'],
    [4, 'pm_sandbox_declined', 'failed'],
    [5, 'pm_sandbox_declined', 'failed'],
    [6, 'pm_sandbox_ok', 'succeeded'],
  ]);
  expect((await db('subscriptions').where({ id: subscriptionId }).first()).status).toBe('active');
});

//   May 1   period invoice 10.00 declined; May 3 cancel now (no closing invoice: no usage, no credit for unused time)
//   May 17  the invoice's last attempt (the 5th), dunned after the end, meets the new card -> attempt 6 pays
//           (before: uncollectible, 10.00 with pm_sandbox_ok on file, never tried). Two parts were missing:
//   - the API did not wake it: api/dunning-retry.ts signaled an ended subscription only while a next attempt was
//     announced (store/payments.ts nextAttemptAnnouncedSql looks for the notice of attempt max+1, none after the
//     last); now also while an attempt is at the gateway with another card (attemptInFlightWithAnotherMethodSql);
//   - the workflow did not act on it: collection.ts `retriedUntilPaid` gave up after the schedule; now it calls
//     `attemptWithNewPaymentMethod` (patch new-payment-method-after-last-retry-after-the-end).
test('after a cancellation now, a payment method replaced during the last attempt pays the invoice dunned after the end', async () => {
  const customer = await api.call('POST', '/v1/customers', { external_id: 'globex', name: 'globex', currency: 'USD', payment_method: 'pm_sandbox_declined' });
  const subscriptionId: string = (await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'monthly', start_at: '2031-05-01T00:00:00Z' })).json.id;
  const handle = env.client.workflow.getHandle(`subscription:${subscriptionId}`);
  await skipTo('2031-05-01T00:01:00Z');
  await eventually(async () => (await handle.query(subscriptionStateQuery)).status === 'past_due', 'the first charge to be declined');
  await skipTo('2031-05-03T00:00:00Z');
  expect((await api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'now', reason: 'leaving' }, { 'Idempotency-Key': 'globex-cancel' })).status).toBe(200);
  await eventually(async () => (await handle.query(subscriptionStateQuery)).status === 'canceled', 'the cancellation');

  await skipTo('2031-05-17T00:00:00Z');
  const last = await eventually(async () => (await handle.query(subscriptionStateQuery)).dunning?.nextAttemptAt, 'the last attempt to be announced');
  await skipTo(last!);
  await eventually(async () => held !== null, 'the last attempt at the gateway');
  expect((await api.call('POST', `/v1/customers/${customer.json.id}/payment-method`, { payment_method: 'pm_sandbox_ok' })).status).toBe(200);
  held!.release();
  held = null;

  await handle.result();
  const invoice = await db('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).first();
  const payments = await db('payments').where({ invoice_id: invoice.id }).orderBy('attempt');
  // Before: uncollectible, attempts 1-5 all with pm_sandbox_declined.
  expect(invoice.status).toBe('paid');
  expect(payments.map((payment) => [payment.attempt, payment.payment_method, payment.status]).slice(4)).toEqual([
    [5, 'pm_sandbox_declined', 'failed'],
    [6, 'pm_sandbox_ok', 'succeeded'],
  ]);
  expect((await db('subscriptions').where({ id: subscriptionId }).first()).status).toBe('canceled');
});

//   Sep 1   period invoice 10.00 declined (past_due); Sep 17 the last attempt (the 5th) is at the gateway when the
//           customer posts pm_sandbox_ok and cancels now; it declines -> attempt 6 with pm_sandbox_ok pays.
//   Before: `attemptWithNewPaymentMethod`'s attempt 6 met the cancellation first (retryCharge returns null before it
//   clears the wake-up), so `runDunning` gave up and the invoice was dunned after the end by `retriedUntilPaid` from
//   `run.dunning.attempt`, still 4: it "retried" attempt 5, chargeInvoice returned that attempt's recorded decline (no
//   charge), the wake-up was spent on it, and the invoice was marked uncollectible, pm_sandbox_ok never tried (10.00).
test('a payment method replaced and a cancellation now while the last attempt is at the gateway: the new card is tried', async () => {
  const customer = await api.call('POST', '/v1/customers', { external_id: 'hooli', name: 'hooli', currency: 'USD', payment_method: 'pm_sandbox_declined' });
  const subscriptionId: string = (await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'monthly', start_at: '2031-09-01T00:00:00Z' })).json.id;
  const handle = env.client.workflow.getHandle(`subscription:${subscriptionId}`);
  await skipTo('2031-09-01T00:01:00Z');
  await eventually(async () => (await handle.query(subscriptionStateQuery)).status === 'past_due', 'the first charge to be declined');
  await skipTo('2031-09-17T00:00:00Z');
  const last = await eventually(async () => (await handle.query(subscriptionStateQuery)).dunning?.nextAttemptAt, 'the last attempt to be announced');
  await skipTo(last!);
  await eventually(async () => held !== null, 'the last attempt at the gateway');
  expect((await api.call('POST', `/v1/customers/${customer.json.id}/payment-method`, { payment_method: 'pm_sandbox_ok' })).status).toBe(200);
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'leaving', requestedBy: 'test' }] });
  held!.release();
  held = null;

  await handle.result();
  const invoice = await db('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).first();
  const payments = await db('payments').where({ invoice_id: invoice.id }).orderBy('attempt');
  // Before: uncollectible, attempts 1-5 all with pm_sandbox_declined (attempt 5 scheduled twice: the second read its decline).
  expect(payments.map((payment) => [payment.attempt, payment.payment_method, payment.status]).slice(4)).toEqual([
    [5, 'pm_sandbox_declined', 'failed'],
    [6, 'pm_sandbox_ok', 'succeeded'],
  ]);
  expect(invoice.status).toBe('paid');
});

//   Nov 1   period invoice 10.00 declined (past_due); Nov 17 the last attempt (the 5th) is at the gateway when the
//           customer cancels now; it declines: dunning's final step marks the invoice uncollectible, and the workflow
//           ends there, with no attempt announced.
//   Before: the cancellation being the customer's, the invoice was dunned after the end from `run.dunning.attempt`,
//   still 4: attempt 5 announced again (ops saw a next attempt on Nov 24 for an uncollectible invoice; the outbox
//   dropped the customer's notice, same dedupe key), the workflow waited 7 days to read attempt 5's recorded decline
//   (no charge) and closed on Nov 24.
test('a cancellation now while the last attempt is at the gateway ends dunning with that attempt', async () => {
  const customer = await api.call('POST', '/v1/customers', { external_id: 'initech', name: 'initech', currency: 'USD', payment_method: 'pm_sandbox_declined' });
  const subscriptionId: string = (await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'monthly', start_at: '2031-11-01T00:00:00Z' })).json.id;
  const handle = env.client.workflow.getHandle(`subscription:${subscriptionId}`);
  await skipTo('2031-11-01T00:01:00Z');
  await eventually(async () => (await handle.query(subscriptionStateQuery)).status === 'past_due', 'the first charge to be declined');
  await skipTo('2031-11-17T00:00:00Z');
  const last = await eventually(async () => (await handle.query(subscriptionStateQuery)).dunning?.nextAttemptAt, 'the last attempt to be announced');
  await skipTo(last!);
  await eventually(async () => held !== null, 'the last attempt at the gateway');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'leaving', requestedBy: 'test' }] });
  held!.release();
  held = null;

  await handle.result();
  const invoice = await db('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).first();
  const payments = await db('payments').where({ invoice_id: invoice.id });
  expect(invoice.status).toBe('uncollectible');
  expect(payments).toHaveLength(5);
  // Before: closed on Nov 24 00:00, after the 7 days of the attempt announced again.
  expect((await handle.describe()).closeTime!.getTime()).toBeLessThan(Date.parse('2031-11-18T00:00:00Z'));
});

//   2032, one retry after 1 day, then suspend. Jan 1 10.00 declined; Jan 2 attempt 2 declined: suspended.
//   Jan 3   a new card that declines too (pm_sandbox_declines_99_then_ok) wakes attempt 3; while it is at the gateway
//           the customer posts pm_sandbox_ok and cancels now; it declines -> after the end attempt 4 with pm_sandbox_ok
//           pays. Before: `run.dunning.attempt` still said 2 (the suspension's), so the dunning after the end "retried"
//           attempt 3, read its recorded decline (no charge) and marked the invoice uncollectible (10.00).
test('suspended, a payment method replaced and a cancellation now during an attempt: the new card is tried after the end', async () => {
  await insertPlan(db, { code: 'suspending', billing_interval: 'P1M', flat_fee: '10.00', settings: { dunning: { retryAfter: ['P1D'], finalAction: 'suspend' } } as never });
  const customer = await api.call('POST', '/v1/customers', { external_id: 'umbrella', name: 'umbrella', currency: 'USD', payment_method: 'pm_sandbox_declined' });
  const subscriptionId: string = (await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'suspending', start_at: '2032-01-01T00:00:00Z' })).json.id;
  const handle = env.client.workflow.getHandle(`subscription:${subscriptionId}`);
  await skipTo('2032-01-02T01:00:00Z');
  await eventually(async () => (await handle.query(subscriptionStateQuery)).status === 'suspended', 'the suspension');
  heldAttempt = ':3';
  await skipTo('2032-01-03T00:00:00Z');
  expect((await api.call('POST', `/v1/customers/${customer.json.id}/payment-method`, { payment_method: 'pm_sandbox_declines_99_then_ok' })).status).toBe(200);
  await eventually(async () => held !== null, 'attempt 3 at the gateway');
  expect((await api.call('POST', `/v1/customers/${customer.json.id}/payment-method`, { payment_method: 'pm_sandbox_ok' })).status).toBe(200);
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'leaving', requestedBy: 'test' }] });
  held!.release();
  held = null;

  await handle.result();
  const invoice = await db('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).first();
  const payments = await db('payments').where({ invoice_id: invoice.id }).orderBy('attempt');
  // Before: uncollectible, attempts 1-3 only (attempt 3 "retried" after the end read its decline).
  expect(payments.map((payment) => [payment.attempt, payment.payment_method, payment.status])).toEqual([
    [1, 'pm_sandbox_declined', 'failed'],
    [2, 'pm_sandbox_declined', 'failed'],
    [3, 'pm_sandbox_declines_99_then_ok', 'failed'],
    [4, 'pm_sandbox_ok', 'succeeded'],
  ]);
  expect(invoice.status).toBe('paid');
});

//   2032, one retry after 1 day, then cancel. Apr 1 10.00 declined (pm_sandbox_declined, attempt 1).
//   Apr 2   attempt 2, the last, declines at the gateway; the customer's pm_sandbox_ok is committed right then, its
//           wake-up not yet delivered (the API writes, then signals: the workflow may act on the decline first)
//           -> dunning's final mark leaves the invoice open, attempt 3 with pm_sandbox_ok pays 10.00, once.
//   Before: the invoice was marked uncollectible and the subscription canceled, pm_sandbox_ok on file never tried
//   (the late signal then found the workflow closed and woke nothing).
test('a payment method committed as the last attempt declines, its wake-up not yet delivered, is tried before the invoice is given up', async () => {
  await insertPlan(db, { code: 'one-retry', billing_interval: 'P1M', flat_fee: '10.00', settings: { dunning: { retryAfter: ['P1D'], finalAction: 'cancel' } } as never });
  const customer = await api.call('POST', '/v1/customers', { external_id: 'stark', name: 'stark', currency: 'USD', payment_method: 'pm_sandbox_declined' });
  const subscriptionId: string = (await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'one-retry', start_at: '2032-04-01T00:00:00Z' })).json.id;
  const handle = env.client.workflow.getHandle(`subscription:${subscriptionId}`);
  heldAttempt = ':none';
  afterCharge = { attempt: ':2', run: async () => void (await replacePaymentMethod(db, customer.json.id, 'pm_sandbox_ok', 'api')) };
  await skipTo('2032-04-01T00:01:00Z');
  await eventually(async () => (await handle.query(subscriptionStateQuery)).status === 'past_due', 'the first charge to be declined');
  await skipTo('2032-04-02T01:00:00Z');
  const state = await eventually(async () => {
    const current = await handle.query(subscriptionStateQuery);
    return current.status !== 'past_due' && current;
  }, 'dunning to end');
  afterCharge = null;

  const invoice = await db('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).first();
  const payments = await db('payments').where({ invoice_id: invoice.id }).orderBy('attempt');
  // Before: canceled, the invoice uncollectible, attempts 1-2 only.
  expect(state.status).toBe('active');
  expect(invoice.status).toBe('paid');
  expect(payments.map((payment) => [payment.attempt, payment.payment_method, toDecimal(payment.amount).toFixed(2), payment.status])).toEqual([
    [1, 'pm_sandbox_declined', '10.00', 'failed'],
    [2, 'pm_sandbox_declined', '10.00', 'failed'],
    [3, 'pm_sandbox_ok', '10.00', 'succeeded'],
  ]);
  expect(await db('sandbox_gateway_charges').where({ reference: invoice.id, status: 'succeeded' }).count('* as n').first()).toEqual({ n: '1' });
  // What the customer is told: declined twice, then paid; never that the invoice was given up.
  expect((await db('outbox').where({ aggregate_id: invoice.id }).orderBy('id')).map((event) => event.event_type)).toEqual([
    'invoice.finalized',
    'payment.failed',
    'payment.failed',
    'payment.succeeded',
  ]);
});

//   The same after the end: May 1 10.00 declined; 00:02 cancel now; the invoice is dunned after the end. May 2 its
//   last attempt (2) declines as pm_sandbox_ok is committed: no wake-up at all then (the API signals an ended
//   subscription only while an attempt is announced or at the gateway with another card) -> attempt 3 pays 10.00.
//   Before: marked uncollectible, pm_sandbox_ok never tried.
test('after the end, a payment method committed as the last attempt declines is tried before the invoice is marked uncollectible', async () => {
  const customer = await api.call('POST', '/v1/customers', { external_id: 'wayne', name: 'wayne', currency: 'USD', payment_method: 'pm_sandbox_declined' });
  const subscriptionId: string = (await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'one-retry', start_at: '2032-05-01T00:00:00Z' })).json.id;
  const handle = env.client.workflow.getHandle(`subscription:${subscriptionId}`);
  heldAttempt = ':none';
  await skipTo('2032-05-01T00:01:00Z');
  await eventually(async () => (await handle.query(subscriptionStateQuery)).status === 'past_due', 'the first charge to be declined');
  await skipTo('2032-05-01T00:02:00Z');
  expect((await api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'now', reason: 'leaving' }, { 'Idempotency-Key': 'wayne-cancel' })).status).toBe(200);
  afterCharge = { attempt: ':2', run: async () => void (await replacePaymentMethod(db, customer.json.id, 'pm_sandbox_ok', 'api')) };
  await skipTo('2032-05-02T01:00:00Z');
  await handle.result();
  afterCharge = null;

  const invoice = await db('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).first();
  const payments = await db('payments').where({ invoice_id: invoice.id }).orderBy('attempt');
  // Before: uncollectible, attempts 1-2 only.
  expect(invoice.status).toBe('paid');
  expect(payments.map((payment) => [payment.attempt, payment.payment_method, toDecimal(payment.amount).toFixed(2), payment.status])).toEqual([
    [1, 'pm_sandbox_declined', '10.00', 'failed'],
    [2, 'pm_sandbox_declined', '10.00', 'failed'],
    [3, 'pm_sandbox_ok', '10.00', 'succeeded'],
  ]);
  expect((await db('subscriptions').where({ id: subscriptionId }).first()).status).toBe('canceled');
});
