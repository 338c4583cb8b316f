/**
 * A cancellation "now" accepted while the main loop is busy at the very end of a period (here: charging a threshold
 * invoice on a slow card) must take effect. The main loop looked for a cancellation when its wait ended, before the
 * charge; the charge finished past the period's end, and the loop handed over to the next period without looking
 * again: the cancellation, answered "canceled", was dropped with the run's state, and the next period was billed.
 * Time-skipping server (real time runs while the slow charge is outstanding) and a real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { CLASSIFIED_ACTIVITIES, createActivities } from '../../activities';
import { classifyActivityFailures } from '../../activities/failures';
import type { PlanSettings } from '../../domain/plan-terms';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { insertUsageEvents } from '../../store/usage';
import { cancelSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, SubscriptionState, subscriptionStateQuery, TASK_QUEUE, usageThresholdReachedSignal } from '../../workflows/definitions';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { runHistories } from '../support/histories';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let worker: Worker;
let running: Promise<void>;

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    // pm_sandbox_slow: every charge takes 5 s of real time, in which the server's clock runs at real speed.
    activities: classifyActivityFailures(createActivities({ db, gateway: new SandboxGateway(db, { slowResponseMs: 5_000 }) }), CLASSIFIED_ACTIVITIES),
  });
  running = worker.run();
  await db('billable_metrics').insert({ code: 'tokens', name: 'Tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens' });
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

async function skipTo(instant: string): Promise<void> {
  const target = new Date(instant).getTime();
  const now = await env.currentTimeMs();
  if (target > now) await env.sleep(target - now);
}

test('a cancellation now accepted while a threshold charge runs over the period end takes effect; the next period is not billed', async () => {
  // Timeline (2030, UTC), 10.00 a month, tokens at 1.00, a threshold at 5.00, a card that takes 5 s:
  //   Oct 1              period invoice 10.00, paid
  //   Oct 31 23:59:57    8 tokens (8.00) -> threshold signal: threshold invoice 8.00, its charge runs to Nov 1 00:00:02
  //   Oct 31 23:59:59    cancel now -> answered "canceled"
  //   Nov 1              the subscription has ended: no November invoice (before: November billed 10.00, still active)
  const settings: PlanSettings & { usageThresholds: { amounts: string[] } } = { usageGracePeriod: 'PT1M', usageThresholds: { amounts: ['5.00'] } };
  const plan = await insertPlan(db, {
    code: 'slow-edge-2030',
    name: 'Slow edge',
    billing_interval: 'P1M',
    flat_fee: '10.00',
    settings: settings as unknown as Record<string, unknown>,
    charges: [{ metricCode: 'tokens', price: { model: 'per_unit', unitPrice: '1.00' } }],
  });
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_slow' });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2030-10-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await skipTo('2030-10-02T00:00:00Z');
  await eventually(async () => (await handle.query(subscriptionStateQuery)).lastInvoice?.status === 'paid', "October's invoice to be paid", { timeoutMs: 60_000 });

  await skipTo('2030-10-31T23:59:57Z');
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 't1', eventType: 'llm.request', occurredAt: new Date('2030-10-31T23:59:56Z'), properties: { tokens: 8 } }]);
  await handle.signal(usageThresholdReachedSignal, { thresholdIndex: 1, accrued: '8.00' });
  await eventually(async () => (await db('invoices').where({ subscription_id: row.id, kind: 'threshold' })).length === 1, 'the threshold invoice');
  const cancel = await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'leaving', requestedBy: 'test' }] });
  expect(cancel.status).toBe('canceled');
  expect(new Date(cancel.effectiveAt!).getTime()).toBeLessThan(new Date('2030-11-01T00:00:00Z').getTime());

  await eventually(async () => (await db('invoices').where({ subscription_id: row.id, kind: 'threshold', status: 'paid' })).length === 1, 'the slow threshold charge', { timeoutMs: 60_000 });
  await skipTo('2030-11-02T00:00:00Z');
  const ended = await eventually(async () => {
    const state: SubscriptionState = await handle.query(subscriptionStateQuery);
    return (state.status === 'canceled' || (state.currentPeriod?.index ?? 0) >= 1) && state;
  }, 'the subscription to end (or, before the fix, November to open)', { timeoutMs: 60_000 });
  const invoices: InvoiceRow[] = await db('invoices').where({ subscription_id: row.id }).orderBy('created_at');
  // The closing invoice bills October's 8.00 of usage, which the threshold invoice already billed: 0.00.
  expect(invoices.map((invoice) => [invoice.kind, invoice.period_start.toISOString().slice(0, 10), Number(invoice.total).toFixed(2)])).toEqual([
    ['period', '2030-10-01', '10.00'],
    ['threshold', '2030-10-01', '8.00'],
    ['closing', '2030-10-01', '0.00'],
  ]);
  expect(ended.status).toBe('canceled');
  expect((await db('subscriptions').where({ id: row.id }).first()).status).toBe('canceled');

  const bundle = await workflowBundle();
  for (const [index, history] of (await runHistories(env.client, handle.workflowId)).entries()) {
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, `cancel-now-at-period-end-run-${index}`);
  }
});
