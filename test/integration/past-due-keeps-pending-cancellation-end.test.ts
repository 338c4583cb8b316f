/**
 * A cancellation at the period's end still pends while an invoice of the period is in dunning: the subscription shows
 * `past_due` (or `suspended`, `needs_attention`) and, once paid, `pending_cancellation` again, and it ends at that
 * period's end (workflows/subscription/collection.ts `statusWhenPaid`). Ingestion learns the usage end from the status
 * `pending_cancellation` (store/usage.ts `USAGE_END_SQL`); the row mirror wrote `past_due` over it with no end, so
 * usage stamped after the period's end while dunning ran past it was accepted, and the closing invoice, stopping at
 * the period's end, never billed it (nor is it late usage). Real Postgres, time-skipping Temporal.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import type { PlanSettings } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import { mirrorSubscriptionStatus } from '../../store/subscriptions';
import { cancelSubscriptionUpdate, paymentMethodUpdatedSignal, SUBSCRIPTION_WORKFLOW_TYPE, subscriptionStateQuery, TASK_QUEUE, usageThresholdReachedSignal } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;
let serverNow = new Date();

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
  await db('billable_metrics').insert({ code: 'pdk_calls', name: 'Calls', event_type: 'pdk.call', aggregation: 'sum', property: 'n' });
  api = await serve(createApp({ db, temporal: env.client, now: () => serverNow }), { headers: (await createTestApiKey(db, 'admin')).headers });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

test('usage stamped after the end of a pending cancellation is refused while its dunning runs past that end', async () => {
  // Timeline (2033), monthly 10.00 + 1.00 a call, threshold invoice at 5.00, default dunning (P1D, P3D, ...):
  //   Jan 1   period [Jan 1, Feb 1) paid
  //   Jan 30  cancel at period end -> pending_cancellation; the card now declines
  //           6 calls (6.00) -> threshold invoice 6.00 declined -> past_due; retries Jan 31, Feb 3
  //   Feb 2   a call stamped Feb 2, after the end: must be refused (timestamp_after_subscription_end)
  //   Feb 2   a new card: the retry pays -> pending_cancellation -> ends at Feb 1
  const settings: PlanSettings & { usageThresholds: unknown } = { usageGracePeriod: 'PT1H', usageThresholds: { amounts: ['5.00'] } };
  const plan = await insertPlan(db, {
    code: 'pending-dunning-end',
    billing_interval: 'P1M',
    flat_fee: '10.00',
    settings: settings as unknown as Record<string, unknown>,
    charges: [{ metricCode: 'pdk_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as unknown[],
  });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2033-01-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  const send = async (id: string, timestamp: string, n: number) => {
    serverNow = await stack.now();
    const answer = await api.call('POST', '/v1/events', { id, customer: customer.external_id, type: 'pdk.call', timestamp, properties: { n } });
    return answer.status === 202 || answer.status === 200 ? 'accepted' : (answer.json.errors?.[0]?.code ?? answer.json.code);
  };

  await stack.advanceTo('2033-01-30T00:00:00Z');
  expect((await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'leaving', requestedBy: 'test' }] })).status).toBe('pending_cancellation');
  await db('customers').where({ id: customer.id }).update({ payment_method: 'pm_sandbox_declined' });
  expect(await send('jan-30', '2033-01-30T00:00:00Z', 6)).toBe('accepted');
  await handle.signal(usageThresholdReachedSignal, { thresholdIndex: 0, accrued: '6.00' });
  await eventually(async () => (await db('subscriptions').where({ id: row.id }).first()).status === 'past_due', 'the declined threshold invoice');

  await stack.advanceTo('2033-02-02T00:00:00Z', 3_600_000);
  expect((await handle.query(subscriptionStateQuery)).status).toBe('past_due');
  // Before: 'accepted', and the closing invoice billed nothing after Feb 1 (the event was never closed).
  const afterTheEnd = await send('feb-2', '2033-02-02T00:00:00Z', 1);

  await db('customers').where({ id: customer.id }).update({ payment_method: 'pm_sandbox_ok' });
  await handle.signal(paymentMethodUpdatedSignal);
  await stack.advanceTo('2033-02-03T00:00:00Z', 3_600_000);
  await eventually(async () => (await handle.query(subscriptionStateQuery)).status === 'canceled', 'the end at the period end');
  const events: { event_id: string; billed: boolean }[] = await db('usage_events')
    .where({ customer_id: customer.id })
    .orderBy('event_id')
    .select('event_id', db.raw('period_close_id IS NOT NULL AS billed'));
  expect({ afterTheEnd, events }).toEqual({ afterTheEnd: 'timestamp_after_subscription_end', events: [{ event_id: 'jan-30', billed: true }] });
  await handle.terminate('test done').catch(() => undefined);
});

test('the written-down end of a pending cancellation moves with the period end a paid suspension moves', async () => {
  // pending_cancellation (end Mar 1) -> past_due -> suspended -> paid 10 days later: pending_cancellation, end Mar 11.
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: `pending-moved-${customer.id}`, billing_interval: 'P1M', flat_fee: '1' });
  const { row } = await insertSubscription(db, customer, plan, new Date('2033-02-01T00:00:00Z'));
  const MAR_1 = new Date('2033-03-01T00:00:00Z');
  const MAR_11 = new Date('2033-03-11T00:00:00Z');
  await db('subscriptions').where({ id: row.id }).update({ status: 'pending_cancellation', current_period_start: new Date('2033-02-01T00:00:00Z'), current_period_end: MAR_1 });
  const record = (status: string, at: string, usageBlocked = false, movedPeriodEnd?: { from: string; to: string }) =>
    mirrorSubscriptionStatus(db, { subscriptionId: row.id, status, at, reason: null, trialEnd: null, usageBlocked, ...(movedPeriodEnd ? { movedPeriodEnd } : {}) });
  const ends = async () => {
    const stored = await db('subscriptions').where({ id: row.id }).first('status', 'current_period_end', 'usage_ends_at');
    return { status: stored.status, periodEnd: stored.current_period_end?.toISOString(), usageEnd: stored.usage_ends_at?.toISOString() ?? null };
  };
  await record('past_due', '2033-02-20T00:00:00.000Z');
  expect(await ends()).toEqual({ status: 'past_due', periodEnd: MAR_1.toISOString(), usageEnd: MAR_1.toISOString() });
  await record('suspended', '2033-02-25T00:00:00.000Z', true);
  await record('pending_cancellation', '2033-03-07T00:00:00.000Z', false, { from: MAR_1.toISOString(), to: MAR_11.toISOString() });
  expect(await ends()).toEqual({ status: 'pending_cancellation', periodEnd: MAR_11.toISOString(), usageEnd: MAR_11.toISOString() });
});
