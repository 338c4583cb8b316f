/**
 * An immediate plan change accepted just before the period's end, while the main loop charges a threshold invoice on
 * a slow card, whose own charge is declined only after the loop finished that charge and went to hand over. The
 * handover waits for the change to finish; its declined invoice must then be dunned before the next period opens,
 * as a decline anywhere in the period is.
 *
 * Before, the decline was left in the run's state (run state only) and dropped at the handover: the proration
 * invoice stayed open for good after one attempt, the next period opened active, and no dunning ever came.
 * Time-skipping server (real time runs while a slow charge is outstanding) and a real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { CLASSIFIED_ACTIVITIES, createActivities } from '../../activities';
import { classifyActivityFailures } from '../../activities/failures';
import { PlanSettings, planScheduleTerms } from '../../domain/plan-terms';
import type { ChargeRequest } from '../../payments/gateway';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { insertUsageEvents } from '../../store/usage';
import { changePlanUpdate, SUBSCRIPTION_WORKFLOW_TYPE, SubscriptionState, subscriptionStateQuery, TASK_QUEUE, usageThresholdReachedSignal } from '../../workflows/definitions';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { runHistories } from '../support/histories';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let worker: Worker;
let running: Promise<void>;

/** pm_sandbox_slow answers after 10 s; pm_sandbox_declined after 12 s (real time, in which the server's clock runs). */
class SlowDeclinesGateway extends SandboxGateway {
  override async charge(request: ChargeRequest) {
    if (request.paymentMethod === 'pm_sandbox_declined') await new Promise((resolve) => setTimeout(resolve, 12_000));
    return super.charge(request);
  }
}

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    activities: classifyActivityFailures(createActivities({ db, gateway: new SlowDeclinesGateway(db, { slowResponseMs: 10_000 }) }), CLASSIFIED_ACTIVITIES),
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

test('a plan change declined while the run hands over to the next period is dunned before that period opens', async () => {
  // Timeline (2031, UTC), 10.00 a month, tokens at 1.00, a threshold at 5.00, dunning one retry after 1 h, then suspend:
  //   Oct 1              period invoice 10.00, paid (slow card)
  //   Oct 31 23:59:50    8 tokens; 23:59:52 threshold signal: threshold invoice 8.00, its charge runs to ~00:00:02
  //   Oct 31 23:59:53    5 more tokens (stamped 23:59:51, after the threshold invoice was written); the card now
  //                      declines (slowly); immediate change to the 20.00 plan -> proration invoice 5.00 (what the
  //                      threshold invoice did not bill; a few seconds' fees round to 0.00), its charge declined at
  //                      ~00:00:06, after the loop went to hand over
  //   Nov 1 00:00:05+    the proration invoice is past due: dunning retries it at 01:00 with the card fixed -> paid;
  //                      then November opens on the new plan, 20.00 (before: November opened active at once and the
  //                      5.00 stayed open, one attempt, never retried)
  const settings: PlanSettings & { usageThresholds: { amounts: string[] } } = {
    usageGracePeriod: 'PT1M',
    usageThresholds: { amounts: ['5.00'] },
    dunning: { retryAfter: ['PT1H'], finalAction: 'suspend' },
  };
  const charges = [{ metricCode: 'tokens', price: { model: 'per_unit', unitPrice: '1.00' } }];
  const common = { billing_interval: 'P1M', settings: settings as unknown as Record<string, unknown>, charges };
  const plan = await insertPlan(db, { code: 'handover-decline-small', flat_fee: '10.00', ...common });
  const bigger = await insertPlan(db, { code: 'handover-decline-big', flat_fee: '20.00', ...common });
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_slow' });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2031-10-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await skipTo('2031-10-02T00:00:00Z');
  await eventually(async () => (await handle.query(subscriptionStateQuery)).lastInvoice?.status === 'paid', "October's invoice to be paid", { timeoutMs: 60_000 });

  await skipTo('2031-10-31T23:59:52Z');
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 't1', eventType: 'llm.request', occurredAt: new Date('2031-10-31T23:59:50Z'), properties: { tokens: 8 } }]);
  await handle.signal(usageThresholdReachedSignal, { thresholdIndex: 1, accrued: '8.00' });
  const threshold = await eventually(async () => db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'threshold' }).first(), 'the threshold invoice', { intervalMs: 50 });
  // Its charge took the slow card when it started (the card is read then); only then does the card decline.
  await eventually(async () => (await db('payments').where({ invoice_id: threshold.id })).length === 1, 'the threshold charge to start', { intervalMs: 50 });
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 't2', eventType: 'llm.request', occurredAt: new Date('2031-10-31T23:59:51Z'), properties: { tokens: 5 } }]);
  await db('customers').where({ id: customer.id }).update({ payment_method: 'pm_sandbox_declined' });
  const change = await handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(bigger), effective: 'immediate', requestedBy: 'test' }] });
  expect(change.effectiveAt < '2031-11-01T00:00:00.000Z').toBe(true); // the precondition: accepted before the period's end
  expect(change.invoice).toMatchObject({ total: '5.00', status: 'open' });
  const proration = change.invoice!.invoiceId;

  // The card is fixed after the decline: only a retry of the proration invoice can collect it.
  await db('customers').where({ id: customer.id }).update({ payment_method: 'pm_sandbox_ok' });
  await skipTo('2031-11-02T00:00:00Z');
  const opened = await eventually(async () => {
    const state: SubscriptionState = await handle.query(subscriptionStateQuery);
    return (state.currentPeriod?.start ?? '') >= '2031-11-01' && state.lastInvoice?.status === 'paid' && state;
  }, 'November to open and its invoice to be paid', { timeoutMs: 60_000 });
  expect(opened).toMatchObject({ status: 'active', planCode: 'handover-decline-big', dunning: null });

  const invoices: InvoiceRow[] = await db('invoices').where({ subscription_id: row.id }).orderBy('created_at');
  expect(invoices.map((invoice) => [invoice.kind, invoice.period_start.toISOString().slice(0, 10), Number(invoice.total).toFixed(2), invoice.status])).toEqual([
    ['period', '2031-10-01', '10.00', 'paid'],
    ['threshold', '2031-10-01', '8.00', 'paid'],
    ['proration', '2031-10-31', '5.00', 'paid'], // before: open, never charged again
    ['period', '2031-11-01', '20.00', 'paid'],
  ]);
  const attempts = await db('payments').where({ invoice_id: proration }).orderBy('attempt').select('attempt', 'status');
  expect(attempts).toEqual([
    { attempt: 1, status: 'failed' },
    { attempt: 2, status: 'succeeded' },
  ]);
  const paidAt = (await db('payments').where({ invoice_id: proration, attempt: 2 }).first()).created_at as Date;
  const november = invoices.find((invoice) => invoice.period_start.toISOString().startsWith('2031-11'))!;
  expect(november.created_at.getTime()).toBeGreaterThan(paidAt.getTime()); // dunned first, then the period opened

  const bundle = await workflowBundle();
  for (const [index, history] of (await runHistories(env.client, handle.workflowId)).entries()) {
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, `plan-change-declined-at-handover-${index}`);
  }
  await handle.terminate('test done');
}, 240_000);
