/**
 * Deterministic identities and scoped idempotency for lifecycle requests, on a time-skipping Temporal server and a
 * real Postgres (issue 11, reproductions 3, 4 and 5):
 *  - a plan change inside the grace window after a boundary leaves the closed period's usage to its period invoice;
 *  - concurrent plan changes take effect one at a time: twenty parallel requests make one change and one invoice;
 *  - a plan change is keyed by its request, so a retried workflow task reuses the change instant it recorded;
 *  - update ids and stored answers are scoped per API key, and a 202 answer is replayed like any other.
 * Server time only moves forward and is shared by the tests of this file, so each test lives in its own year.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { createApp } from '../../api/app';
import { planScheduleTerms, PlanSettings } from '../../domain/plan-terms';
import type { Charge } from '../../domain/rating';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { PlanRow } from '../../store/catalog';
import type { Database } from '../../store/database';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { insertUsageEvents } from '../../store/usage';
import { changePlanUpdate, pauseSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { recordHistory } from '../support/histories';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
  await db('billable_metrics').insert({ code: 'tokens', name: 'Tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens' });
  // No workflow runs yet: jump to the first test's year at once. (The test server ends a run 10 years after its
  // start, so each test starts its subscription within a few years of the server's clock.)
  await stack.advanceTo('2030-01-01T00:00:00Z', 365 * 86_400_000);
});

afterAll(async () => stack?.stop());

const advanceTo = (instant: string, stepMs?: number): Promise<void> => stack.advanceTo(instant, stepMs);
const tokenCharge = (unitPrice: string): Charge[] => [{ metricCode: 'tokens', price: { model: 'per_unit', unitPrice } }];
const money = (value: string): string => Number(value).toFixed(2);

async function plan(code: string, flatFee: string, settings: PlanSettings = {}, charges: Charge[] = []): Promise<PlanRow> {
  return insertPlan(db, { code, name: code, billing_interval: 'P1M', flat_fee: flatFee, settings: settings as Record<string, unknown>, charges: charges as unknown[] });
}

async function subscribe(planRow: PlanRow, startAt: string) {
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, planRow, new Date(startAt));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  return { subscriptionId: row.id, customerId: customer.id, handle };
}

async function invoicesOf(subscriptionId: string): Promise<InvoiceRow[]> {
  return db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy([{ column: 'period_start' }, { column: 'created_at' }]);
}

async function usageBilled(invoiceIds: string[]): Promise<string> {
  const lines = await db<InvoiceLineRow>('invoice_lines').whereIn('invoice_id', invoiceIds).where({ kind: 'usage' });
  return money(String(lines.reduce((sum, line) => sum + Number(line.amount), 0)));
}

test('a plan change inside the grace window after a boundary: the closed period usage stays on its period invoice', async () => {
  // Timeline (2030; April has 30 days), grace window 1 hour:
  //
  //   Mar 1          Mar 2..11                 Apr 1 00:00   00:00:02            01:00 (grace ends)
  //   |--basic 3.10--|-10 x 1,000 tokens-------|-------------|-------------------|--------------->
  //   INV period     (rated at basic 0.0005)   boundary      immediate change    INV period (April):
  //   3.10                                     grace opens   to pro 6.20         basic fee 3.10 (in force at Apr 1)
  //                                                          INV proration:      + March usage 10,000 x 0.0005 = 5.00
  //                                                          -3.10 + 6.20 for    = 8.10
  //                                                          Apr 1 00:00:02..May 1, usage only [Apr 1, change): none
  //
  // The closed period's usage belongs to its period invoice, rated under the plan in force then; the proration
  // covers only the open stretch from the period start to the change. Before: the proration invoice billed the
  // March usage too (5.00 twice), and the April invoice charged the new plan's whole fee on top of the proration.
  const basic = await plan('basic-2030', '3.10', { usageGracePeriod: 'PT1H' }, tokenCharge('0.0005'));
  const pro = await plan('pro-2030', '6.20', { usageGracePeriod: 'PT1H' }, tokenCharge('0.001'));
  const { subscriptionId, customerId, handle } = await subscribe(basic, '2030-03-01T00:00:00Z');
  await advanceTo('2030-03-12T00:00:00Z');
  await insertUsageEvents(
    db,
    Array.from({ length: 10 }, (_, i) => ({ customerId, eventId: `grace-${i}`, eventType: 'llm.request', occurredAt: new Date(Date.UTC(2030, 2, 2 + i)), properties: { tokens: 1000 } })),
  );
  await advanceTo('2030-04-01T00:00:00Z', 3_600_000);
  await advanceTo('2030-04-01T00:00:02Z', 1_000);
  // The boundary started a new run (continue-as-new): address the workflow, not the first run.
  const current = env.client.workflow.getHandle(handle.workflowId);
  const change = await current.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(pro), effective: 'immediate', requestedBy: 'test' }] });
  expect(change).toMatchObject({ effective: 'immediate', planCode: 'pro-2030', invoice: { total: '3.10' } });

  await advanceTo('2030-04-02T00:00:00Z', 600_000);
  const invoices = await invoicesOf(subscriptionId);
  expect(invoices.map((invoice) => [invoice.kind, invoice.period_start.toISOString().slice(0, 10), money(invoice.total)])).toEqual([
    ['period', '2030-03-01', '3.10'],
    ['period', '2030-04-01', '8.10'],
    ['proration', '2030-04-01', '3.10'],
  ]);
  // 10 x 1,000 tokens are billed exactly once, on the period invoice, at the plan in force in March.
  expect(await usageBilled(invoices.map((invoice) => invoice.id))).toBe('5.00');
  const april = invoices.find((invoice) => invoice.kind === 'period' && invoice.period_start.toISOString().startsWith('2030-04'))!;
  expect(await usageBilled([april.id])).toBe('5.00');
  expect(invoices.every((invoice) => invoice.status === 'paid')).toBe(true);
  expect(await current.query(subscriptionStateQuery)).toMatchObject({ planCode: 'pro-2030', status: 'active' });
  await current.terminate('test done');
});

test('twenty parallel plan changes with distinct request ids: one change, one proration invoice, the rest rejected as same_plan', async () => {
  // Timeline (2031): Mar 1 basic 10.00; Mar 16 twenty requests to move to pro at once.
  const basic = await plan('basic-2031', '10.00');
  const pro = await plan('pro-2031', '20.00');
  const { subscriptionId, handle } = await subscribe(basic, '2031-03-01T00:00:00Z');
  await advanceTo('2031-03-16T00:00:00Z');
  const answers = await Promise.allSettled(
    Array.from({ length: 20 }, () =>
      handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(pro), effective: 'immediate', requestedBy: 'test' }], updateId: randomUUID() }),
    ),
  );
  const applied = answers.filter((answer) => answer.status === 'fulfilled');
  const rejected = answers.flatMap((answer) => (answer.status === 'rejected' ? [(answer.reason as { cause?: Error }).cause?.message] : []));
  expect(applied).toHaveLength(1);
  expect(rejected).toEqual(Array.from({ length: 19 }, () => 'same_plan'));
  expect((await invoicesOf(subscriptionId)).filter((invoice) => invoice.kind === 'proration')).toHaveLength(1);
  expect(await db('plan_changes').where({ subscription_id: subscriptionId }).count<{ count: string }[]>('* as count')).toEqual([{ count: '1' }]);
  const audit = await db('audit_log').where({ subject_id: subscriptionId, action: 'subscription.plan_changed' });
  expect(audit).toHaveLength(1);
  await recordHistory(handle, 'subscription-parallel-plan-changes');
  await handle.terminate('test done');
});

test('a retried workflow task reuses the change it recorded: same request, same instant, same proration invoice', async () => {
  // What a retried task does after its first attempt's local activities committed: the same update id proposes a
  // later instant (its own workflow-task time) and must get the first one back, and so the same invoice.
  const basic = await plan('basic-2032', '31.00');
  const pro = await plan('pro-2032', '62.00');
  const customer = await insertCustomer(db);
  const { row } = await insertSubscription(db, customer, basic, new Date('2032-03-01T00:00:00Z'));
  const activities = createActivities({ db, gateway: new SandboxGateway(db) });
  const intent = { subscriptionId: row.id, requestKey: 'key-a:changePlan:upgrade', oldPlanId: basic.id, newPlanId: pro.id, requestedBy: 'test' };
  const first = await activities.recordPlanChange({ ...intent, changeAt: '2032-03-11T00:00:00.000Z' });
  const retried = await activities.recordPlanChange({ ...intent, changeAt: '2032-03-11T00:00:00.040Z' });
  expect(retried).toEqual(first);
  const period = { start: '2032-03-01T00:00:00.000Z', end: '2032-04-01T00:00:00.000Z' };
  const prorate = (changeAt: string) => activities.createProrationInvoice({ subscriptionId: row.id, period, changeAt, oldPlanId: basic.id, newPlanId: pro.id, usagePeriod: null });
  expect((await prorate(retried.changeAt)).invoiceId).toBe((await prorate(first.changeAt)).invoiceId);
  // Another request in the same instant (two changes in one workflow task) gets its own instant, so its own invoice.
  const next = await activities.recordPlanChange({ ...intent, requestKey: 'key-a:changePlan:downgrade', oldPlanId: pro.id, newPlanId: basic.id, changeAt: first.changeAt });
  expect(new Date(next.changeAt).getTime()).toBe(new Date(first.changeAt).getTime() + 1);
  expect((await invoicesOf(row.id)).filter((invoice) => invoice.kind === 'proration')).toHaveLength(1);
});

test('a retried workflow task that makes a retention offer again gets the first offer back, not a refusal', async () => {
  // The cancel handler's offer is stamped with workflow time; a retried task proposes a later instant. Before, the
  // cooldown ("one retention offer in twelve months") then answered offered: false, and the cancellation went
  // ahead although the customer had been sent the offer.
  const basic = await plan('basic-2036', '10.00');
  const customer = await insertCustomer(db);
  const { row } = await insertSubscription(db, customer, basic, new Date('2036-03-01T00:00:00Z'));
  const activities = createActivities({ db, gateway: new SandboxGateway(db) });
  const offer = { subscriptionId: row.id, customerId: customer.id, kind: 'retention' as const, terms: { percentOff: 20 } };
  const first = await activities.makeCustomerOffer({ ...offer, at: '2036-03-10T00:00:00.000Z', expiresAt: '2036-03-17T00:00:00.000Z' });
  const retried = await activities.makeCustomerOffer({ ...offer, at: '2036-03-10T00:00:09.000Z', expiresAt: '2036-03-17T00:00:09.000Z' });
  expect([first.offered, retried.offered]).toEqual([true, true]);
  expect(retried).toEqual({ offered: true, expiresAt: '2036-03-17T00:00:00.000Z' });
  expect(await db('customer_offers').where({ subscription_id: row.id })).toHaveLength(1);
  expect(await db('outbox').where({ aggregate_id: row.id, event_type: 'retention.offered' })).toHaveLength(1);
});

describe('scoped idempotency over HTTP', () => {
  let first: TestApiKey;
  let second: TestApiKey;
  let api: TestHttp;

  beforeAll(async () => {
    first = await createTestApiKey(db, 'admin');
    second = await createTestApiKey(db, 'admin');
    api = await serve(createApp({ db, temporal: env.client }), { headers: first.headers });
  });
  afterAll(async () => api?.close());

  test('two API keys using one Idempotency-Key for different plan changes each get their own change', async () => {
    // Timeline (2033): Mar 1 basic 10.00; Mar 10 key 1 schedules team at period end with Idempotency-Key K;
    //   key 2 sends the same K for an immediate upgrade to pro: it is a different request and takes effect.
    const basic = await plan('basic-2033', '10.00');
    await plan('team-2033', '15.00');
    await plan('pro-2033', '20.00');
    const { subscriptionId, handle } = await subscribe(basic, '2033-03-01T00:00:00Z');
    await advanceTo('2033-03-10T00:00:00Z');
    const key = { 'Idempotency-Key': 'shared-key' };
    const scheduled = await api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'team-2033', effective: 'period_end' }, key);
    expect([scheduled.status, scheduled.json.effective, scheduled.json.plan_code]).toEqual([200, 'period_end', 'team-2033']);
    const upgraded = await api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'pro-2033', effective: 'immediate' }, { ...key, ...second.headers });
    expect([upgraded.status, upgraded.json.effective, upgraded.json.plan_code]).toEqual([200, 'immediate', 'pro-2033']);
    expect(upgraded.headers.get('idempotent-replayed')).toBeNull();
    expect((await handle.query(subscriptionStateQuery)).planCode).toBe('pro-2033');
    // Each key's repeat replays its own answer.
    const again = await api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'pro-2033', effective: 'immediate' }, { ...key, ...second.headers });
    expect([again.status, again.text, again.headers.get('idempotent-replayed')]).toEqual([200, upgraded.text, 'true']);

    // Cancel the same way: key 1's answer is not handed to key 2, whose own cancellation is applied.
    const pending = await api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'key 1' }, { 'Idempotency-Key': 'shared-cancel' });
    expect([pending.status, pending.json.status]).toEqual([200, 'pending_cancellation']);
    const now = await api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'now', reason: 'key 2' }, { 'Idempotency-Key': 'shared-cancel', ...second.headers });
    expect([now.status, now.json.status]).toEqual([200, 'canceled']);
    expect(await stack.resultOf(handle)).toMatchObject({ status: 'canceled' });
  });

  test('a re-rating asked twice with one Idempotency-Key starts once; the 202 is replayed', async () => {
    // Timeline (2034): Mar 1 basic 10.00 (INV 10.00); Mar 5 finance asks for a re-rating of that invoice twice.
    const basic = await plan('basic-2034', '10.00');
    const { subscriptionId, handle } = await subscribe(basic, '2034-03-01T00:00:00Z');
    await advanceTo('2034-03-05T00:00:00Z');
    const [invoice] = await invoicesOf(subscriptionId);
    const key = { 'Idempotency-Key': `rerate-${randomUUID()}` };
    const body = { reason: 'double check' };
    const asked = await api.call('POST', `/v1/invoices/${invoice.id}/rerate`, body, key);
    const repeated = await api.call('POST', `/v1/invoices/${invoice.id}/rerate`, body, key);
    expect(asked.status).toBe(202);
    expect([repeated.status, repeated.text, repeated.headers.get('idempotent-replayed')]).toEqual([202, asked.text, 'true']);
    expect(await db('rerates').where({ invoice_id: invoice.id }).count<{ count: string }[]>('* as count')).toEqual([{ count: '1' }]);
    // The re-rating's identity comes from the request: the same key from another API key is another re-rating.
    const theirs = await api.call('POST', `/v1/invoices/${invoice.id}/rerate`, body, { ...key, ...second.headers });
    expect(theirs.status).toBe(202);
    expect(theirs.json.id).not.toBe(asked.json.id);
    await handle.terminate('test done');
  });
});

test('a pause inside the grace window is refused while the period opens (period_opening), and accepted once it is open', async () => {
  // Found by the lifecycle simulation (seeds 11021, 11023): a pause accepted while the period was being opened
  // was dropped when that period's invoice was then declined (dunning moved the status to past_due, then active).
  //
  //   Jan 1 2035 start ------------- Feb 1 00:00 boundary, grace opens   00:00:02 pause: 409 period_opening
  //                                  01:00 grace ends: usage closed, February invoiced and charged
  //                                  01:00:10 pause: accepted (paused)
  const basic = await plan('basic-2035', '3.10', { usageGracePeriod: 'PT1H' }, tokenCharge('0.0005'));
  const { handle } = await subscribe(basic, '2035-01-01T00:00:00Z');
  await advanceTo('2035-01-31T00:00:00Z', 30 * 86_400_000);
  await advanceTo('2035-02-01T00:00:00Z', 3_600_000);
  await advanceTo('2035-02-01T00:00:02Z', 1_000);
  const current = env.client.workflow.getHandle(handle.workflowId);
  const pause = () => current.executeUpdate(pauseSubscriptionUpdate, { args: [{ until: null, requestedBy: 'test' }] });
  await expect(pause()).rejects.toMatchObject({ cause: { message: 'period_opening' } });
  expect(await current.query(subscriptionStateQuery)).toMatchObject({ status: 'active' });

  await advanceTo('2035-02-01T01:00:10Z', 60_000);
  await expect(pause()).resolves.toMatchObject({ status: 'paused' });
  expect(await current.query(subscriptionStateQuery)).toMatchObject({ status: 'paused' });
  await current.terminate('test done');
});

test('one API key reusing an expired Idempotency-Key for another plan change gets that change, not the first answer', async () => {
  // Timeline (2037): Mar 1 basic 10.00; Mar 10 key K schedules team at period end; K expires (24 h, here at once)
  //   and the same API key sends K again for an immediate upgrade to pro: a new request, so a new update.
  const basic = await plan('basic-2037', '10.00');
  await plan('team-2037', '15.00');
  await plan('pro-2037', '20.00');
  const { subscriptionId, handle } = await subscribe(basic, '2037-03-01T00:00:00Z');
  await advanceTo('2037-03-10T00:00:00Z');
  const forgetful = await serve(createApp({ db, temporal: env.client, idempotency: { expireAfterMs: 0 } }), { headers: (await createTestApiKey(db, 'admin')).headers });
  try {
    const key = { 'Idempotency-Key': 'expired-key' };
    const scheduled = await forgetful.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'team-2037', effective: 'period_end' }, key);
    expect([scheduled.status, scheduled.json.effective, scheduled.json.plan_code]).toEqual([200, 'period_end', 'team-2037']);
    const upgraded = await forgetful.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'pro-2037', effective: 'immediate' }, key);
    expect([upgraded.status, upgraded.json.effective, upgraded.json.plan_code]).toEqual([200, 'immediate', 'pro-2037']);
    expect((await handle.query(subscriptionStateQuery)).planCode).toBe('pro-2037');
  } finally {
    await forgetful.close();
  }
  await handle.terminate('test done');
});

test('a cancellation asked again while its retention offer is open is refused as retention_offer_pending, not a 500', async () => {
  // Timeline (2038): Mar 1 a plan with a retention offer; Mar 10 cancel at period end: the offer is made; the customer
  //   asks to cancel now instead. The workflow refuses it (the offer is answered first); the route used to map only
  //   the refusals it listed, and answered this one 500.
  const offerPlan = await plan('retain-2038', '40.00', { retentionOffer: { percentOff: '50', periods: 2, expiresAfter: 'P7D' } });
  const { subscriptionId, handle } = await subscribe(offerPlan, '2038-03-01T00:00:00Z');
  await advanceTo('2038-03-10T00:00:00Z');
  const api = await serve(createApp({ db, temporal: env.client }), { headers: (await createTestApiKey(db, 'admin')).headers });
  try {
    const asked = await api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'too expensive' });
    expect([asked.status, asked.json.status]).toEqual([200, 'retention_offered']);
    const again = await api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'now', reason: 'no, now' });
    expect([again.status, again.type, again.json.code]).toEqual([409, expect.stringContaining('application/problem+json'), 'retention_offer_pending']);
    expect((await handle.query(subscriptionStateQuery)).status).toBe('retention_offered');
  } finally {
    await api.close();
  }
  await handle.terminate('test done');
});
