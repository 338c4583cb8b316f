/**
 * Every activity the subscription workflow calls is classified (activities/index.ts): a deterministic failure is
 * never retried forever. Each class of call site is shown here with a real failure written into Postgres:
 * - a billing step (the charge) waits in needs_attention and resumes from that step after ops retry, charging once;
 * - a side step (a customer notification) is noted in the timeline and billing goes on;
 * - a transient gateway failure still retries with backoff and never needs attention;
 * - updates that could not take effect while the subscription is ending are refused, not answered "done".
 * Real Postgres, real time-skipping Temporal server.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { createApp } from '../../api/app';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import { planScheduleTerms } from '../../domain/plan-terms';
import { findPlanVersion } from '../../store/catalog';
import { changePlanUpdate, RERATE_WORKFLOW_TYPE, rerateWorkflowId, SEARCH_ATTRIBUTES, SubscriptionState, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let worker: Worker;
let workerRun: Promise<void>;
let api: TestHttp;
let finance: { authorization: string };

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    // The worker's own activities, unchanged: every failure below comes from Postgres or the sandbox gateway.
    activities: createActivities({ db, gateway: new SandboxGateway(db, { slowResponseMs: 5_000 }) }),
  });
  workerRun = worker.run();
  api = await serve(createApp({ db, temporal: env.client, now: () => new Date() }), { headers: (await createTestApiKey(db, 'admin')).headers });
  finance = (await createTestApiKey(db, 'finance')).headers;
  expect((await api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.call', aggregation: 'count' })).status).toBe(201);
  // Metered: ending a subscription closes its last usage after the grace hour, the window the last test uses.
  const calls = [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '0.01' } }];
  const plans = [
    { code: 'monthly', name: 'Monthly', currency: 'USD', billing_interval: 'P1M', flat_fee: '20.00', usage_grace_period: 'PT1H', charges: calls },
    { code: 'monthly-plus', name: 'Monthly plus', currency: 'USD', billing_interval: 'P1M', flat_fee: '40.00', usage_grace_period: 'PT1H', charges: calls },
    // A fee large enough that a change seconds before the boundary prorates to a charge (about 1 USD a second).
    { code: 'monthly-max', name: 'Monthly max', currency: 'USD', billing_interval: 'P1M', flat_fee: '3000000.00', usage_grace_period: 'PT1H', charges: calls },
    { code: 'trial', name: 'Trial', currency: 'USD', billing_interval: 'P1M', flat_fee: '30.00', trial_period: 'P14D', charges: [] },
  ];
  for (const plan of plans) expect((await api.call('POST', '/v1/plans', plan)).status).toBe(201);
});

afterAll(async () => {
  await api?.close();
  worker?.shutdown();
  await workerRun;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

async function subscribe(externalId: string, planCode: string, startAt: string, paymentMethod = 'pm_sandbox_ok'): Promise<{ id: string; customerId: string; handle: WorkflowHandle }> {
  const customer = await api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: paymentMethod });
  expect(customer.status).toBe(201);
  const subscription = await api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: planCode, start_at: startAt });
  expect(subscription.status).toBe(201);
  return { id: subscription.json.id, customerId: customer.json.id, handle: env.client.workflow.getHandle(`subscription:${subscription.json.id}`) };
}

async function skipTo(instant: string): Promise<void> {
  const target = new Date(instant).getTime();
  const now = await env.currentTimeMs();
  if (target > now) await env.sleep(target - now);
}

const stateOf = (handle: WorkflowHandle): Promise<SubscriptionState> => handle.query(subscriptionStateQuery);
const invoicesOf = (subscriptionId: string) => db('invoices').where({ subscription_id: subscriptionId }).orderBy('created_at');
const paymentsOf = (invoiceId: string) => db('payments').where({ invoice_id: invoiceId }).orderBy('attempt');
const gatewayChargesOf = (invoiceId: string) => db('sandbox_gateway_charges').where({ reference: invoiceId });
const outboxOf = (subscriptionId: string, eventType: string) => db('outbox').where({ aggregate_id: subscriptionId, event_type: eventType }).orderBy('id');

test('a charge Postgres refuses stops billing visibly at charge_invoice; after the fix and a retry the invoice is charged exactly once', async () => {
  // Timeline (UTC, 2034):
  //   Jan 1   the customer's payment method breaks a check constraint on payments (bad data, written straight in):
  //           the invoice is finalized, its charge fails with check_violation -> needs_attention (step charge_invoice)
  //           queries answer; cancel and plan change are refused with 409 subscription_needs_attention
  //   (ops)   the payment method is fixed, retry -> the same attempt is charged once -> active
  //   Feb 1   the next period is invoiced (after the grace hour) and charged as usual
  // Before every activity was classified, the charge retried forever here and the subscription showed active.
  await db.raw(`ALTER TABLE payments ADD CONSTRAINT attention_test_poisoned_method CHECK (payment_method IS DISTINCT FROM 'pm_poisoned')`);
  try {
    const { id, customerId, handle } = await subscribe('charge-poisoned', 'monthly', '2034-01-01T00:00:00Z', 'pm_poisoned');
    await skipTo('2034-01-01T00:00:05Z');
    let last: SubscriptionState | undefined;
    const stuck = await eventually(async () => {
      last = await stateOf(handle);
      return last.status === 'needs_attention' && last;
    }, () => `the charge to need attention: ${JSON.stringify(last)}`);
    expect(stuck.attention).toMatchObject({ step: 'charge_invoice', errorType: 'check_violation', failures: 1, retrying: false });
    expect(stuck.timeline.at(-1)).toMatchObject({ event: 'status:needs_attention', detail: expect.stringContaining('charge_invoice failed (check_violation)') });
    expect((await db('subscriptions').where({ id }).first()).status).toBe('needs_attention');
    const description = await handle.describe();
    expect(description.status.name).toBe('RUNNING');
    expect(description.typedSearchAttributes.get(SEARCH_ATTRIBUTES.status)).toBe('needs_attention');
    const [alert] = await outboxOf(id, 'subscription.needs_attention');
    expect(alert.payload).toMatchObject({ subscriptionId: id, status: 'needs_attention', reason: expect.stringContaining('charge_invoice') });
    const [invoice] = await invoicesOf(id);
    expect([invoice.status, invoice.total]).toEqual(['open', '20.000000000000']);
    expect(await paymentsOf(invoice.id)).toHaveLength(0);

    for (const [path, body] of [
      ['cancel', { at: 'now', reason: 'stuck' }],
      ['plan-change', { plan_code: 'monthly-plus', effective: 'immediate' }],
    ] as const) {
      const refused = await api.call('POST', `/v1/subscriptions/${id}/${path}`, body);
      expect([path, refused.status, refused.json.code]).toEqual([path, 409, 'subscription_needs_attention']);
    }

    await db('customers').where({ id: customerId }).update({ payment_method: 'pm_sandbox_ok' });
    const retry = await api.call('POST', `/v1/subscriptions/${id}/retry`, {}, finance);
    expect(retry.status).toBe(202);
    expect(retry.json).toEqual({ status: 'needs_attention', retrying_step: 'charge_invoice' });
    await eventually(async () => (await stateOf(handle)).status === 'active', 'the retried charge to succeed');
    expect((await db('invoices').where({ id: invoice.id }).first()).status).toBe('paid');
    expect((await paymentsOf(invoice.id)).map((payment) => [payment.attempt, payment.status])).toEqual([[1, 'succeeded']]);
    expect(await gatewayChargesOf(invoice.id)).toHaveLength(1);
    expect((await handle.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.status)).toBe('active');

    await skipTo('2034-02-01T02:00:00Z');
    await eventually(async () => (await invoicesOf(id)).length === 2, 'the February invoice');
    const invoices = await invoicesOf(id);
    await eventually(async () => (await db('invoices').where({ id: invoices[1].id }).first()).status === 'paid', 'the February charge');
    for (const each of invoices) expect(await gatewayChargesOf(each.id)).toHaveLength(1);
  } finally {
    await db.raw('ALTER TABLE payments DROP CONSTRAINT IF EXISTS attention_test_poisoned_method');
  }
});

test('a gateway that loses its answer is transient: the charge is retried, found by its key, and never needs attention', async () => {
  const { id, handle } = await subscribe('charge-lost-answer', 'monthly', '2034-03-01T00:00:00Z', 'pm_sandbox_lost_response');
  await skipTo('2034-03-01T00:00:05Z');
  const [invoice] = await eventually(async () => {
    const invoices = await invoicesOf(id);
    return invoices.length === 1 && invoices[0].status === 'paid' && invoices;
  }, 'the invoice to be paid after the lost answer');
  expect(await gatewayChargesOf(invoice.id)).toHaveLength(1);
  const state = await stateOf(handle);
  expect(state.status).toBe('active');
  expect(state.attention).toBeNull();
  expect(state.timeline.map((entry) => entry.event)).not.toContain('status:needs_attention');
});

test('a customer notification Postgres refuses is noted in the timeline and billing goes on', async () => {
  // Timeline (UTC, 2034): Apr 1 trial starts (14 days); Apr 12 the trial-ending notice cannot be stored (a check
  // constraint refuses it) -> notification_failed; Apr 15 the trial converts and the first invoice is charged.
  const { id, handle } = await subscribe('notice-refused', 'trial', '2034-04-01T00:00:00Z');
  await db.raw(`ALTER TABLE outbox ADD CONSTRAINT attention_test_refused_notice CHECK (dedupe_key <> 'trial.ending:${id}')`);
  try {
    await skipTo('2034-04-15T00:00:05Z');
    const [invoice] = await eventually(async () => {
      const invoices = await invoicesOf(id);
      return invoices.length === 1 && invoices[0].status === 'paid' && invoices;
    }, 'the first invoice after the trial');
    expect(invoice.total).toBe('30.000000000000');
    const state = await stateOf(handle);
    expect(state.status).toBe('active');
    expect(state.attention).toBeNull();
    expect(state.timeline.find((entry) => entry.event === 'notification_failed')).toMatchObject({ detail: expect.stringContaining('check_violation') });
    expect(state.timeline.map((entry) => entry.event)).toContain('trial_converted');
    expect(await outboxOf(id, 'trial.ending')).toHaveLength(0);
  } finally {
    await db.raw('ALTER TABLE outbox DROP CONSTRAINT IF EXISTS attention_test_refused_notice');
  }
});

test('while a cancellation now is being carried out, plan change, pause and resume are refused instead of answered done', async () => {
  // Timeline (UTC, 2034): May 1 active; May 10 cancel now -> the last usage waits out the plan's grace hour before
  // the closing steps, and the status is still what it was. Before, a plan change (or a resume of a paused
  // subscription canceled now) was answered 200 in that hour, and the subscription was canceled anyway.
  const { id, handle } = await subscribe('ending-active', 'monthly', '2034-05-01T00:00:00Z');
  const paused = await subscribe('ending-paused', 'monthly', '2034-05-01T00:00:00Z');
  await skipTo('2034-05-10T00:00:00Z');
  await eventually(async () => (await stateOf(handle)).status === 'active' && (await stateOf(paused.handle)).status === 'active', 'both to start');
  expect((await api.call('POST', `/v1/subscriptions/${paused.id}/pause`, {})).json.status).toBe('paused');

  expect((await api.call('POST', `/v1/subscriptions/${id}/cancel`, { at: 'now', reason: 'leaving' })).json.status).toBe('canceled');
  expect((await api.call('POST', `/v1/subscriptions/${paused.id}/cancel`, { at: 'now', reason: 'leaving' })).json.status).toBe('canceled');
  for (const [subscriptionId, path, body] of [
    [id, 'plan-change', { plan_code: 'monthly-plus', effective: 'immediate' }],
    [id, 'plan-change', { plan_code: 'monthly-plus', effective: 'period_end' }],
    [id, 'pause', {}],
    [paused.id, 'resume', {}],
  ] as const) {
    const refused = await api.call('POST', `/v1/subscriptions/${subscriptionId}/${path}`, body);
    expect([path, refused.status, refused.json.code]).toEqual([path, 409, 'subscription_already_canceled']);
  }
  expect((await stateOf(handle)).timeline.map((entry) => entry.event)).not.toContain('plan_changed');

  await skipTo('2034-05-10T02:00:00Z');
  await eventually(async () => (await db('subscriptions').whereIn('id', [id, paused.id]).where({ status: 'canceled' })).length === 2, 'both cancellations to take effect');
  expect((await db('subscriptions').where({ id }).first()).plan_id).toBe((await db('plans').where({ code: 'monthly' }).first()).id);
});

test('an immediate plan change whose proration invoice Postgres refuses waits in needs_attention inside the update, and completes once after the retry', async () => {
  // Timeline (UTC, 2034): Jun 1 active on monthly (20.00 paid); Jun 16 immediate change to monthly-plus: the usage so
  // far is closed, then the proration invoice breaks a check constraint -> needs_attention (create_proration_invoice),
  // the update stays in flight, queries answer, the plan is not switched. Ops drop the bad rule and retry: the
  // proration invoice is created and charged once, the plan switched once, and the update answers with it.
  const { id, handle } = await subscribe('proration-refused', 'monthly', '2034-06-01T00:00:00Z');
  await skipTo('2034-06-16T00:00:00Z');
  await eventually(async () => (await stateOf(handle)).lastInvoice?.status === 'paid', 'the June invoice to be paid');
  await db.raw(`ALTER TABLE invoices ADD CONSTRAINT attention_test_refused_proration CHECK (kind <> 'proration' OR subscription_id <> '${id}')`);
  const plus = (await findPlanVersion(db, 'monthly-plus'))!;
  const change = await handle.startUpdate(changePlanUpdate, {
    args: [{ plan: planScheduleTerms(plus), effective: 'immediate', requestedBy: 'test' }],
    updateId: 'proration-refused-1',
    waitForStage: 'ACCEPTED',
  });
  try {
    const stuck = await eventually(async () => {
      const state = await stateOf(handle);
      return state.status === 'needs_attention' && state;
    }, 'the proration to need attention');
    expect(stuck.attention).toMatchObject({ step: 'create_proration_invoice', errorType: 'check_violation' });
    expect(stuck.planCode).toBe('monthly');
    expect((await handle.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.status)).toBe('needs_attention');
    expect(await outboxOf(id, 'subscription.needs_attention')).toHaveLength(1);
    const again = await api.call('POST', `/v1/subscriptions/${id}/plan-change`, { plan_code: 'monthly-plus', effective: 'immediate' });
    expect([again.status, again.json.code]).toEqual([409, 'subscription_needs_attention']);
  } finally {
    await db.raw('ALTER TABLE invoices DROP CONSTRAINT IF EXISTS attention_test_refused_proration');
  }
  expect((await api.call('POST', `/v1/subscriptions/${id}/retry`, {}, finance)).json).toEqual({ status: 'needs_attention', retrying_step: 'create_proration_invoice' });
  const result = await change.result();
  expect(result).toMatchObject({ effective: 'immediate', planCode: 'monthly-plus', invoice: { status: 'paid' } });
  const prorations = await db('invoices').where({ subscription_id: id, kind: 'proration' });
  expect(prorations).toHaveLength(1);
  expect(await gatewayChargesOf(prorations[0].id)).toHaveLength(1);
  const state = await stateOf(handle);
  expect([state.status, state.planCode, state.attention]).toEqual(['active', 'monthly-plus', null]);
  expect(state.timeline.filter((entry) => entry.event === 'plan_changed')).toHaveLength(1);
  expect((await db('subscriptions').where({ id }).first()).plan_id).toBe((await findPlanVersion(db, 'monthly-plus'))!.id);
});

test('a status change the row refuses is noted, the workflow keeps its status, and billing goes on', async () => {
  // A pause whose mirror Postgres refuses (a check constraint): the workflow is paused all the same (the timeline
  // says status_record_failed); the resume is recorded as usual and the next period is billed.
  const { id, handle } = await subscribe('mirror-refused', 'monthly', '2034-08-01T00:00:00Z');
  await skipTo('2034-08-02T00:00:00Z');
  await eventually(async () => (await stateOf(handle)).lastInvoice?.status === 'paid', 'the August invoice to be paid');
  await db.raw(`ALTER TABLE subscriptions ADD CONSTRAINT attention_test_refused_pause CHECK (status <> 'paused' OR id <> '${id}')`);
  try {
    expect((await api.call('POST', `/v1/subscriptions/${id}/pause`, {})).json.status).toBe('paused');
    const paused = await stateOf(handle);
    expect(paused.status).toBe('paused');
    expect(paused.timeline.find((entry) => entry.event === 'status_record_failed')).toMatchObject({ detail: expect.stringContaining('check_violation') });
    expect((await db('subscriptions').where({ id }).first()).status).toBe('active');
    expect((await handle.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.status)).toBe('paused');
  } finally {
    await db.raw('ALTER TABLE subscriptions DROP CONSTRAINT IF EXISTS attention_test_refused_pause');
  }
  expect((await api.call('POST', `/v1/subscriptions/${id}/resume`, {})).json.status).toBe('active');
  await eventually(async () => (await stateOf(handle)).status === 'active', 'the resume');
  await skipTo('2034-09-03T00:00:00Z');
  await eventually(async () => (await invoicesOf(id)).length === 2, 'the next period invoice');
  expect((await stateOf(handle)).attention).toBeNull();
});

test('past the period end, while a handler still runs, a pause is refused: the next period would open active and drop it', async () => {
  // Timeline (UTC, 2034): Oct 1 active (a slow card: each charge takes 5 s). Oct 31 23:59:57 an immediate change to a far dearer plan;
  // its charge is still running when the period ends, so the run waits for it before handing over to November's.
  // A pause arriving then used to be answered "paused" and then dropped: November's run opens the period as active.
  const { id, handle } = await subscribe('boundary-pause', 'monthly', '2034-10-01T00:00:00Z', 'pm_sandbox_slow');
  await skipTo('2034-10-02T00:00:00Z');
  await eventually(async () => (await stateOf(handle)).lastInvoice?.status === 'paid', 'the October invoice to be paid', { timeoutMs: 60_000 });
  await skipTo('2034-10-31T23:59:57Z');
  const max = (await findPlanVersion(db, 'monthly-max'))!;
  const change = await handle.startUpdate(changePlanUpdate, {
    args: [{ plan: planScheduleTerms(max), effective: 'immediate', requestedBy: 'test' }],
    updateId: 'boundary-change',
    waitForStage: 'ACCEPTED',
  });
  await new Promise((resolve) => setTimeout(resolve, 3_500)); // past the boundary, the proration's charge still running
  expect(await env.currentTimeMs()).toBeGreaterThan(new Date('2034-11-01T00:00:00Z').getTime());
  const pause = await api.call('POST', `/v1/subscriptions/${id}/pause`, {});
  expect([pause.status, pause.json.code]).toEqual([409, 'period_opening']);
  const changed = await change.result();
  expect(changed.planCode).toBe('monthly-max');
  expect(Number(changed.invoice?.total)).toBeGreaterThan(0); // a real charge, slow: it carried the run past the end
  await skipTo('2034-11-01T02:00:00Z');
  await eventually(async () => (await stateOf(handle)).currentPeriod?.index === 1, "November's run", { timeoutMs: 60_000 });
  const state = await stateOf(handle);
  expect([state.status, state.pausedUntil]).toEqual(['active', null]);
  expect(state.timeline.map((entry) => entry.event)).not.toContain('status:paused');
});

test('a re-rating whose data Postgres cannot read fails visibly with its type (rerate_failed) instead of retrying forever', async () => {
  // Its id is not a uuid: every read of the re-rating fails with invalid_text_representation, on every retry.
  const handle = await env.client.workflow.start(RERATE_WORKFLOW_TYPE, {
    workflowId: rerateWorkflowId('not-a-uuid'),
    taskQueue: TASK_QUEUE,
    args: [{ rerateId: 'not-a-uuid', subscriptionId: 'none', invoiceId: 'none', decisionWindow: 'P7D' }],
  });
  const failure = await handle.result().then(
    () => null,
    (error: unknown) => error,
  );
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  expect((failure as WorkflowFailedError).cause).toMatchObject({ type: 'invalid_text_representation', nonRetryable: true });
  expect((await handle.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.status)).toBe('rerate_failed');
});
