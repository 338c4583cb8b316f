/**
 * A run hands over to a fresh one mid-period when the server suggests it (workflowInfo().continueAsNewSuggested).
 * That handover must be invisible: what the run held for the customer goes on in the next run, with the same
 * answers and the same timers. The time-skipping server never suggests it; here a dev server of our own suggests it
 * after a handful of events (limit.historyCount.suggestContinueAsNew), so the first update after the period opened
 * is served by a run that then hands over.
 *
 * Before, the next run got the status but not what stood behind it:
 * - an open retention offer was dropped with status retention_offered: the answer was refused (no_retention_offer),
 *   a new cancellation too (retention_offer_pending), the offer never expired, and the next period was billed;
 * - a pause lost its start and its end: a pause "until" never ended (the period's end never moved, the service
 *   stayed off), and a resume was answered "active" while the run failed on every workflow task from then on.
 * Real time (a real server), a real Postgres.
 */
import { Client, Connection, WorkflowHandle } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { CLASSIFIED_ACTIVITIES, createActivities } from '../../activities';
import { classifyActivityFailures } from '../../activities/failures';
import type { PlanSettings } from '../../domain/plan-terms';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import { RunningDevServer, startDevServer } from '../../scripts/temporal-servers';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { insertUsageEvents } from '../../store/usage';
import {
  answerRetentionOfferUpdate,
  cancelSubscriptionUpdate,
  pauseSubscriptionUpdate,
  resumeSubscriptionUpdate,
  SEARCH_ATTRIBUTE_REGISTRATIONS,
  SUBSCRIPTION_WORKFLOW_TYPE,
  SubscriptionState,
  subscriptionStateQuery,
  TASK_QUEUE,
  usageThresholdReachedSignal,
} from '../../workflows/definitions';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { runHistories } from '../support/histories';
import { workflowBundle } from '../support/temporal';

// A fresh run takes its first task at 3 events and waits at about 5; an opened period's run is far past 9. So the
// first update after the period opened gets the suggestion, and a run carried mid-period does not, until its next
// step (nothing loops from run to run).
const SUGGEST_CONTINUE_AS_NEW_AFTER_EVENTS = 9;

let devServer: RunningDevServer;
let db: Database;
let nativeConnection: NativeConnection;
let connection: Connection;
let client: Client;
let worker: Worker;
let running: Promise<void>;

beforeAll(async () => {
  [db, devServer] = await Promise.all([
    createTestDatabase(),
    startDevServer({
      ui: false,
      searchAttributes: SEARCH_ATTRIBUTE_REGISTRATIONS,
      log: () => undefined,
      dynamicConfigValues: [`limit.historyCount.suggestContinueAsNew=${SUGGEST_CONTINUE_AS_NEW_AFTER_EVENTS}`],
    }),
  ]);
  [nativeConnection, connection] = await Promise.all([NativeConnection.connect({ address: devServer.address }), Connection.connect({ address: devServer.address })]);
  client = new Client({ connection });
  worker = await Worker.create({
    connection: nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    // pm_sandbox_slow answers after 6 s (the threshold case); every other card at once.
    activities: classifyActivityFailures(createActivities({ db, gateway: new SandboxGateway(db, { slowResponseMs: 6_000 }) }), CLASSIFIED_ACTIVITIES),
  });
  running = worker.run();
  await db('billable_metrics').insert({ code: 'tokens', name: 'Tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens' });
}, 180_000);

afterAll(async () => {
  worker?.shutdown();
  await running;
  await nativeConnection?.close();
  await connection?.close();
  await Promise.all([devServer?.stop(), db?.destroy()]);
});

const state = (handle: WorkflowHandle): Promise<SubscriptionState> => handle.query(subscriptionStateQuery);

/** A monthly subscription started now, once its first period is open and paid (its run far past the suggestion). */
async function subscribe(
  code: string,
  settings: PlanSettings,
  extra: { charges?: unknown[]; paymentMethod?: string } = {},
): Promise<{ subscriptionId: string; customerId: string; handle: WorkflowHandle; firstRunId: string }> {
  const plan = await insertPlan(db, { code, billing_interval: 'P1M', flat_fee: '30.00', settings: settings as Record<string, unknown>, ...(extra.charges ? { charges: extra.charges } : {}) });
  const customer = await insertCustomer(db, extra.paymentMethod ? { payment_method: extra.paymentMethod } : {});
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date());
  const handle = await client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await eventually(async () => (await state(handle)).lastInvoice?.status === 'paid', 'the first period to be invoiced and paid', { timeoutMs: 90_000 });
  return { subscriptionId: row.id, customerId: customer.id, handle, firstRunId: handle.firstExecutionRunId };
}

/** Waits until the run that served the last update has handed over to a fresh one (the precondition of every case). */
async function handedOver(handle: WorkflowHandle, firstRunId: string): Promise<void> {
  await eventually(async () => {
    const description = await client.workflow.getHandle(handle.workflowId).describe();
    return description.runId !== firstRunId && description.status.name === 'RUNNING';
  }, 'the server-suggested handover to a fresh run', { timeoutMs: 30_000 });
}

async function replayEveryRun(handle: WorkflowHandle, name: string): Promise<void> {
  const bundle = await workflowBundle();
  for (const [index, history] of (await runHistories(client, handle.workflowId)).entries()) {
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, `${name}-${index}`);
  }
}

test('a retention offer open at a mid-period handover is answered, and expires, as if no handover happened', async () => {
  // Timeline (real time, seconds): 0 two subscriptions open their month (INV 30.00 each) and ask to cancel at the
  // period's end -> offered 50 % off 2 periods for 20 s; the runs hand over; then A declines -> pending_cancellation
  // (effective at the period's end); B says nothing -> at 20 s its offer expires -> pending_cancellation.
  const settings: PlanSettings = { retentionOffer: { percentOff: '50', periods: 2, expiresAfter: 'PT20S' } };
  const [declines, silent] = [await subscribe('handover-offer-declined', settings), await subscribe('handover-offer-silent', settings)];
  const periodEnd = (await state(silent.handle)).currentPeriod!.end;
  for (const { handle } of [declines, silent]) {
    const asked = await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'too expensive', requestedBy: 'test' }] });
    expect(asked).toMatchObject({ status: 'retention_offered', retentionOffer: { percentOff: '50', periods: 2 } });
  }
  await handedOver(declines.handle, declines.firstRunId);
  await handedOver(silent.handle, silent.firstRunId);

  // The fresh run still holds the offer the customer was told about (before: null, status retention_offered), and
  // still shows the period's invoice (before: none).
  expect(await state(declines.handle)).toMatchObject({ status: 'retention_offered', retentionOffer: { percentOff: '50', periods: 2 }, lastInvoice: { total: '30.00', status: 'paid' } });
  const declined = await declines.handle.executeUpdate(answerRetentionOfferUpdate, { args: [{ accept: false, requestedBy: 'test' }] });
  expect(declined).toEqual({ status: 'pending_cancellation' });
  expect(await state(declines.handle)).toMatchObject({ status: 'pending_cancellation', pendingCancellation: { at: 'period_end' }, retentionOffer: null });

  // The offer's expiry is a timer of the fresh run (before: nothing expired it; retention_offered for good).
  const expired = await eventually(async () => {
    const now = await state(silent.handle);
    return now.status === 'pending_cancellation' && now;
  }, 'the offer to expire in the fresh run', { timeoutMs: 45_000 }).catch(async () => state(silent.handle));
  expect(expired).toMatchObject({ status: 'pending_cancellation', retentionOffer: null, currentPeriod: { end: periodEnd } });
  expect((await db('customer_offers').where({ subscription_id: silent.subscriptionId }).first()).answer).toBe('expired');

  for (const { subscriptionId } of [declines, silent]) {
    expect((await db('subscriptions').where({ id: subscriptionId }).first()).status).toBe('pending_cancellation');
    const invoices: InvoiceRow[] = await db('invoices').where({ subscription_id: subscriptionId });
    expect(invoices.map((invoice) => Number(invoice.total).toFixed(2))).toEqual(['30.00']);
  }
  await replayEveryRun(declines.handle, 'handover-offer-declined');
  await replayEveryRun(silent.handle, 'handover-offer-silent');
  await Promise.all([declines.handle.terminate('test done'), silent.handle.terminate('test done')]);
}, 240_000);

test('a pause taken at a mid-period handover ends when asked, and a resume resumes, as if no handover happened', async () => {
  // Timeline (real time, seconds): 0 two subscriptions open their month (INV 30.00 each); A pauses until +15 s, B
  // pauses until resumed; the runs hand over; at +15 s A resumes by itself, its period's end moved on by the paused
  // time; B is resumed by request, its period's end moved on likewise.
  const [timed, open] = [await subscribe('handover-pause-until', {}), await subscribe('handover-pause-open', {})];
  const endBefore = (handle: WorkflowHandle) => state(handle).then((now) => new Date(now.currentPeriod!.end).getTime());
  const [timedEnd, openEnd] = [await endBefore(timed.handle), await endBefore(open.handle)];
  const until = new Date(Date.now() + 15_000).toISOString();
  expect(await timed.handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ until, requestedBy: 'test' }] })).toEqual({ status: 'paused', pausedUntil: until });
  expect(await open.handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ until: null, requestedBy: 'test' }] })).toEqual({ status: 'paused', pausedUntil: null });
  await handedOver(timed.handle, timed.firstRunId);
  await handedOver(open.handle, open.firstRunId);
  expect(await state(timed.handle)).toMatchObject({ status: 'paused', pausedUntil: until }); // before: pausedUntil null

  const resumedAt = (handle: WorkflowHandle): Promise<SubscriptionState> =>
    eventually(async () => {
      const now = await state(handle);
      return now.status === 'active' && now;
    }, 'the subscription to resume in the fresh run', { timeoutMs: 45_000 });
  const timedResumed = await resumedAt(timed.handle).catch(async () => state(timed.handle));
  expect(timedResumed.status).toBe('active'); // before: paused for good
  const timedMoved = new Date(timedResumed.currentPeriod!.end).getTime() - timedEnd;
  expect(timedMoved).toBeGreaterThanOrEqual(14_000);
  expect(timedMoved).toBeLessThan(30_000);

  await new Promise((resolve) => setTimeout(resolve, 2_000));
  expect(await open.handle.executeUpdate(resumeSubscriptionUpdate, { args: [{ requestedBy: 'test' }] })).toEqual({ status: 'active' });
  const openResumed = await resumedAt(open.handle).catch(async () => state(open.handle)); // before: the run failed every task
  expect(openResumed.status).toBe('active');
  expect(new Date(openResumed.currentPeriod!.end).getTime() - openEnd).toBeGreaterThanOrEqual(2_000);

  for (const { subscriptionId } of [timed, open]) {
    expect((await db('subscriptions').where({ id: subscriptionId }).first()).status).toBe('active');
  }
  await replayEveryRun(timed.handle, 'handover-pause-until');
  await replayEveryRun(open.handle, 'handover-pause-open');
  await Promise.all([timed.handle.terminate('test done'), open.handle.terminate('test done')]);
}, 240_000);

test('a usage threshold reached while the run that hands over charges the previous one is invoiced by the next run', async () => {
  // Timeline (real time, seconds): 0 the month opens (INV 30.00, a card that takes 6 s); 6 tokens (6.00) -> threshold
  // signal: threshold invoice 6.00, charged for 6 s; meanwhile 6 more tokens (12.00) -> the next threshold's signal;
  // the run hands over once the charge is done -> the fresh run writes the second threshold invoice (6.00).
  // Before, the second signal was dropped with the run: no threshold invoice until the period's end.
  const charges = [{ metricCode: 'tokens', price: { model: 'per_unit', unitPrice: '1.00' } }];
  const settings = { usageThresholds: { amounts: ['5.00', '10.00'] } } as PlanSettings;
  const { subscriptionId, customerId, handle, firstRunId } = await subscribe('handover-threshold', settings, { charges, paymentMethod: 'pm_sandbox_slow' });
  const usage = (eventId: string) => insertUsageEvents(db, [{ customerId, eventId, eventType: 'llm.request', occurredAt: new Date(Date.now() - 1_000), properties: { tokens: 6 } }]);
  const thresholdInvoices = (): Promise<InvoiceRow[]> => db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'threshold' }).orderBy('created_at');

  await usage('t1');
  await handle.signal(usageThresholdReachedSignal, { thresholdIndex: 1, accrued: '6.00' });
  const [first] = await eventually(async () => {
    const written = await thresholdInvoices();
    return written.length === 1 && (await db('payments').where({ invoice_id: written[0].id })).length === 1 && written;
  }, 'the first threshold invoice and its charge', { intervalMs: 50 });
  await usage('t2');
  await handle.signal(usageThresholdReachedSignal, { thresholdIndex: 2, accrued: '12.00' });
  // The precondition: the second signal reached the run while the first charge was still at the gateway.
  expect((await db('payments').where({ invoice_id: first.id }).first()).status).toBe('pending');
  await handedOver(handle, firstRunId);

  const both = await eventually(async () => {
    const written = await thresholdInvoices();
    return written.length === 2 && written;
  }, 'the second threshold invoice', { timeoutMs: 30_000 }).catch(thresholdInvoices);
  expect(both.map((invoice) => Number(invoice.total).toFixed(2))).toEqual(['6.00', '6.00']); // before: ['6.00']
  await replayEveryRun(handle, 'handover-threshold');
  await handle.terminate('test done');
}, 240_000);
