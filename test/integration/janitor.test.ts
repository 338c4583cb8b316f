/**
 * The janitor (workflows/janitor.ts) on a real time-skipping Temporal server and Postgres: what it repairs (a payment
 * whose answer was lost, an invoice nobody collects), what it only flags (a period past grace without its invoice, a
 * subscription in needs_attention), how findings open and resolve, the findings route, /metrics, and its schedule
 * (on a dev server: the time-skipping server has no schedules).
 */
import { Client, Connection, WorkflowHandle } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { JANITOR_SCHEDULE_ID, ReconciliationMargins, ReconciliationReport } from '../../contract/janitor';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import { RunningDevServer, startDevServer } from '../../scripts/temporal-servers';
import type { CustomerRow } from '../../store/customers';
import type { InvoiceRow } from '../../store/invoices';
import type { FindingRow } from '../../store/janitor';
import type { PaymentRow } from '../../store/payments';
import { ensureJanitorSchedule } from '../../worker/janitor-schedule';
import { rerateWorkflowId, SEARCH_ATTRIBUTE_REGISTRATIONS, TASK_QUEUE } from '../../workflows/definitions';
import { reconciliationWorkflow } from '../../workflows/janitor';
import { rerateWorkflow } from '../../workflows/rerate';
import { serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { eventually } from '../support/eventually';
import { recordHistory } from '../support/histories';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let stack: TimeSkippingStack;
let plain: Client;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  // Waiting through the time-skipping client would let server time jump; the janitor has no timers to skip.
  plain = new Client({ connection: stack.env.connection });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

/** Acts at once on anything pending or open (the defaults wait 15 minutes and an hour). */
const NO_WAIT: Partial<ReconciliationMargins> = { pendingPaymentMs: 0, uncollectedInvoiceMs: 0 };

/** One janitor run to its end; `history` names a replay fixture to save (with RECORD_HISTORIES=<tag>, test/support/histories.ts). */
async function runJanitor(margins: Partial<ReconciliationMargins> = NO_WAIT, history?: string): Promise<ReconciliationReport> {
  const handle: WorkflowHandle = await stack.env.client.workflow.start(reconciliationWorkflow, {
    taskQueue: TASK_QUEUE,
    workflowId: `${JANITOR_SCHEDULE_ID}-test-${randomUUID()}`,
    args: [{ margins }],
  });
  const report: ReconciliationReport = await plain.workflow.getHandle(handle.workflowId).result();
  if (history) await recordHistory(handle, history);
  return report;
}

async function insertOpenInvoice(customer: CustomerRow, fields: Partial<InvoiceRow> = {}): Promise<InvoiceRow> {
  const [row] = await stack.db<InvoiceRow>('invoices')
    .insert({
      number: `JAN-${randomUUID().slice(0, 8)}`,
      customer_id: customer.id,
      subscription_id: null,
      kind: 'proration',
      status: 'open',
      currency: 'USD',
      period_start: new Date('2030-01-01T00:00:00Z'),
      period_end: new Date('2030-02-01T00:00:00Z'),
      total: '42.00',
      finalized_at: new Date(Date.now() - 60_000),
      ...fields,
    })
    .returning('*');
  return row;
}

const ledgerOf = (invoiceId: string) => stack.db('sandbox_gateway_charges').where({ reference: invoiceId });
const paymentsOf = (invoiceId: string): Promise<PaymentRow[]> => stack.db<PaymentRow>('payments').where({ invoice_id: invoiceId }).orderBy('attempt');
const invoiceStatus = async (invoiceId: string) => (await stack.db<InvoiceRow>('invoices').where({ id: invoiceId }).first())!.status;
const findingsOf = (subjectId: string): Promise<FindingRow[]> => stack.db<FindingRow>('reconciliation_findings').where({ subject_id: subjectId }).orderBy('first_seen');

test('a payment left pending by a lost gateway response is settled from the charge found by its key: paid, one gateway charge', async () => {
  const customer = await insertCustomer(stack.db, { payment_method: 'pm_sandbox_lost_response' });
  const invoice = await insertOpenInvoice(customer);
  // The charge commits at the gateway, its answer is lost, and nothing retries it (the workflow that asked is gone).
  const activities = createActivities({ db: stack.db, gateway: new SandboxGateway(stack.db) });
  await expect(activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).rejects.toMatchObject({ type: 'gateway_unavailable' });
  const [pending] = await paymentsOf(invoice.id);
  expect(pending.status).toBe('pending');

  const report = await runJanitor(NO_WAIT, 'janitor-settles-lost-payment');
  expect(report.scanned.unknownPayments).toBeGreaterThanOrEqual(1);

  expect(await invoiceStatus(invoice.id)).toBe('paid');
  expect(await paymentsOf(invoice.id)).toEqual([expect.objectContaining({ id: pending.id, attempt: 1, status: 'succeeded' })]);
  expect(await ledgerOf(invoice.id)).toHaveLength(1);
  expect(await stack.db('outbox').where({ aggregate_id: invoice.id, event_type: 'payment.succeeded' })).toHaveLength(1);
  const [finding] = await findingsOf(pending.id);
  expect(finding).toMatchObject({ kind: 'unknown_payment', subject_type: 'payment', repaired: true });
  expect(finding.resolved_at).not.toBeNull();
  expect(finding.detail).toMatch(/succeeded; payment settled, invoice paid/);

  // Run again: nothing left to do, nothing charged.
  await runJanitor();
  expect(await ledgerOf(invoice.id)).toHaveLength(1);
  expect(await findingsOf(pending.id)).toHaveLength(1);
}, 120_000);

test('an open invoice nobody collects is charged once; a second run does nothing more', async () => {
  const customer = await insertCustomer(stack.db, { payment_method: 'pm_sandbox_ok' });
  const invoice = await insertOpenInvoice(customer, { total: '7.60' });
  // Declined before, and no dunning in flight: reported, never charged again by the janitor.
  const declining = await insertCustomer(stack.db, { payment_method: 'pm_sandbox_declined' });
  const declined = await insertOpenInvoice(declining, { total: '3.00' });
  // In dunning (the subscription is past due and retries it itself): left alone entirely.
  const plan = await insertPlan(stack.db, { code: `janitor-dunning-${randomUUID().slice(0, 8)}`, billing_interval: 'P1M', flat_fee: '5.00' });
  const dunningCustomer = await insertCustomer(stack.db, { payment_method: 'pm_sandbox_declined' });
  const { row: inDunning } = await insertSubscription(stack.db, dunningCustomer, plan, new Date());
  await stack.db('subscriptions').where({ id: inDunning.id }).update({ status: 'past_due' });
  const dunningInvoice = await insertOpenInvoice(dunningCustomer, { subscription_id: inDunning.id, total: '5.00' });
  const activities = createActivities({ db: stack.db, gateway: new SandboxGateway(stack.db) });
  expect(await activities.chargeInvoice({ invoiceId: dunningInvoice.id, attempt: 1 })).toMatchObject({ outcome: 'declined' });

  await runJanitor(NO_WAIT, 'janitor-collects-idle-invoices');
  expect(await invoiceStatus(invoice.id)).toBe('paid');
  expect(await paymentsOf(invoice.id)).toEqual([expect.objectContaining({ attempt: 1, status: 'succeeded', idempotency_key: `payment:${invoice.id}:1` })]);
  expect(await ledgerOf(invoice.id)).toHaveLength(1);
  expect(await findingsOf(invoice.id)).toEqual([expect.objectContaining({ kind: 'uncollected_invoice', repaired: true })]);
  // The declining card: one attempt, declined, reported open.
  expect(await paymentsOf(declined.id)).toEqual([expect.objectContaining({ attempt: 1, status: 'failed' })]);
  const [declinedFinding] = await findingsOf(declined.id);
  expect(declinedFinding).toMatchObject({ kind: 'uncollected_invoice', repaired: false, resolved_at: null });
  expect(await findingsOf(dunningInvoice.id)).toEqual([]);

  await runJanitor();
  expect(await ledgerOf(invoice.id)).toHaveLength(1);
  expect(await paymentsOf(invoice.id)).toHaveLength(1);
  expect(await findingsOf(invoice.id)).toHaveLength(1);
  expect(await ledgerOf(declined.id)).toHaveLength(1);
  expect(await paymentsOf(declined.id)).toHaveLength(1);
  const again = await findingsOf(declined.id);
  expect(again).toEqual([expect.objectContaining({ id: declinedFinding.id, resolved_at: null })]);
  expect(again[0].detail).toMatch(/1 declined attempt\(s\) \(last: insufficient_funds\)/);
  expect(await ledgerOf(dunningInvoice.id)).toHaveLength(1);
  expect(await paymentsOf(dunningInvoice.id)).toHaveLength(1);
}, 120_000);

/** A subscription inside a period that ended `endedAgoMs` ago (as the row looks when its next invoice never came). */
async function subscriptionWithPeriodEnded(endedAgoMs: number, status = 'active') {
  const plan = await insertPlan(stack.db, { code: `janitor-${randomUUID().slice(0, 8)}`, billing_interval: 'P1M', flat_fee: '10.00' });
  const customer = await insertCustomer(stack.db);
  const now = (await stack.now()).getTime();
  const { row } = await insertSubscription(stack.db, customer, plan, new Date(now - 40 * 86_400_000));
  await stack.db('subscriptions')
    .where({ id: row.id })
    .update({ status, current_period_start: new Date(now - endedAgoMs - 30 * 86_400_000), current_period_end: new Date(now - endedAgoMs) });
  return row;
}

test('a period past grace + margin without its invoice is flagged, and resolved once the invoice moves the period on', async () => {
  //   period n ............................|--grace 1h--|--margin 1h--|...... now (3 h after the end): flagged
  //   period n (other subscription) .......|--grace--|-- now (30 min after the end): still inside grace, not flagged
  const stalled = await subscriptionWithPeriodEnded(3 * 3_600_000);
  const inGrace = await subscriptionWithPeriodEnded(30 * 60_000);
  const attention = await subscriptionWithPeriodEnded(3 * 3_600_000, 'needs_attention');
  await stack.db('audit_log').insert({ actor: 'workflow', action: 'subscription.needs_attention', subject_type: 'subscription', subject_id: attention.id, reason: 'createPeriodInvoice: numeric field overflow' });

  const first = await runJanitor();
  const [flagged] = await findingsOf(stalled.id);
  expect(flagged).toMatchObject({ kind: 'period_not_closed', subject_type: 'subscription', repaired: false, resolved_at: null });
  expect(flagged.detail).toMatch(/next period invoice is missing; its usage is not closed/);
  expect(await findingsOf(inGrace.id)).toEqual([]);
  // needs_attention is its own finding (its period is not also reported: the workflow is stopped, not late).
  expect(await findingsOf(attention.id)).toEqual([expect.objectContaining({ kind: 'needs_attention', resolved_at: null, detail: expect.stringContaining('numeric field overflow') })]);
  expect(first.opened).toBeGreaterThanOrEqual(2);

  // Seen again: the same finding, last_seen moves on, nothing new.
  await runJanitor();
  const [seenAgain] = await findingsOf(stalled.id);
  expect(seenAgain.id).toBe(flagged.id);
  expect(seenAgain.last_seen.getTime()).toBeGreaterThanOrEqual(flagged.last_seen.getTime());

  // Fixed: the next period's invoice was written (current period moves on), and ops resumed the other one.
  const now = (await stack.now()).getTime();
  await stack.db('subscriptions').where({ id: stalled.id }).update({ current_period_start: new Date(now - 3_600_000), current_period_end: new Date(now + 29 * 86_400_000) });
  await stack.db('subscriptions').where({ id: attention.id }).update({ status: 'active', current_period_end: new Date(now + 29 * 86_400_000) });
  const fixed = await runJanitor();
  expect(fixed.resolved).toBeGreaterThanOrEqual(2);
  const [resolved] = await findingsOf(stalled.id);
  expect(resolved).toMatchObject({ id: flagged.id, repaired: false });
  expect(resolved.resolved_at).not.toBeNull();
  expect((await findingsOf(attention.id))[0].resolved_at).not.toBeNull();
}, 120_000);

/**
 * Re-ratings nothing will carry out are findings (`rerate_not_carried_out`, the re-rating as subject): one that failed,
 * one whose workflow ops terminated while it waited for finance, one whose workflow never started (the row says
 * `computing` for good); one waiting for finance in its running workflow is not. Before, none was listed. A new
 * re-rating of the failed one's invoice settles its finding.
 */
test('re-ratings that failed or whose workflow is gone are flagged; a new re-rating of the invoice resolves the finding', async () => {
  const customer = await insertCustomer(stack.db);
  const plan = await insertPlan(stack.db, { code: `janitor-rerate-${randomUUID()}`, billing_interval: 'P1M', flat_fee: '10.00' });
  const { row: subscription } = await insertSubscription(stack.db, customer, plan, new Date('2030-01-01T00:00:00Z'));
  let month = 0;
  const paidInvoice = () => {
    month += 1; // one period invoice per period
    return insertOpenInvoice(customer, { subscription_id: subscription.id, kind: 'period', status: 'paid', period_start: new Date(Date.UTC(2030, month, 1)), period_end: new Date(Date.UTC(2030, month + 1, 1)) });
  };
  const requestedAnHourAgo = new Date(Date.now() - 3_600_000);
  const rerate = async (invoice: InvoiceRow, status: string, fields: Record<string, unknown> = {}): Promise<string> => {
    const [row] = await stack.db('rerates')
      .insert({ invoice_id: invoice.id, subscription_id: subscription.id, customer_id: customer.id, status, requested_by: 'finance', reason: 'price fix', created_at: requestedAnHourAgo, ...fields })
      .returning('id');
    return row.id;
  };
  const startRerate = (rerateId: string, invoice: InvoiceRow) =>
    stack.env.client.workflow.start(rerateWorkflow, {
      taskQueue: TASK_QUEUE,
      workflowId: rerateWorkflowId(rerateId),
      args: [{ rerateId, subscriptionId: subscription.id, invoiceId: invoice.id, decisionWindow: 'P30D' }],
    });
  const failedInvoice = await paidInvoice();
  const failed = await rerate(failedInvoice, 'failed', { failure_code: 'refund_exceeds_paid', failure_message: 'the period cannot give 25.00 USD back' });
  const [terminatedInvoice, waitingInvoice] = [await paidInvoice(), await paidInvoice()];
  const terminated = await rerate(terminatedInvoice, 'proposed');
  const waiting = await rerate(waitingInvoice, 'proposed');
  const neverStarted = await rerate(await paidInvoice(), 'computing');
  await (await startRerate(terminated, terminatedInvoice)).terminate('ops: stuck');
  const waitingWorkflow = await startRerate(waiting, waitingInvoice);

  const rerateMarginsNow = { ...NO_WAIT, rerateWorkflowMs: 0 };
  await runJanitor(rerateMarginsNow);
  const finding = async (rerateId: string) => (await findingsOf(rerateId))[0];
  expect(await finding(failed)).toMatchObject({ kind: 'rerate_not_carried_out', subject_type: 'rerate', repaired: false, resolved_at: null });
  expect((await finding(failed)).detail).toContain('failed (refund_exceeds_paid): the period cannot give 25.00 USD back');
  expect((await finding(terminated)).detail).toContain(`says proposed but its workflow rerate:${terminated} ended TERMINATED`);
  expect((await finding(neverStarted)).detail).toContain(`says computing but its workflow rerate:${neverStarted} does not exist`);
  expect(await findingsOf(waiting)).toEqual([]);

  // Finance asks again for the failed one's invoice: that finding is resolved; the others stay open.
  await rerate(failedInvoice, 'nothing_to_do', { created_at: new Date() });
  await runJanitor(rerateMarginsNow);
  expect((await finding(failed)).resolved_at).not.toBeNull();
  expect((await finding(terminated)).resolved_at).toBeNull();
  await waitingWorkflow.terminate('test over');
}, 120_000);

test('the findings route lists them for finance and monitoring, and /metrics counts them by kind and state', async () => {
  const stalled = await subscriptionWithPeriodEnded(5 * 3_600_000);
  await runJanitor();
  const finance = await createTestApiKey(stack.db, 'finance');
  const monitoring = await createTestApiKey(stack.db, 'monitoring');
  const app = await createTestApiKey(stack.db, 'app');
  const api = await serveApiOnly(stack.db, { headers: finance.headers });
  try {
    const open = await api.http.call('GET', '/v1/reconciliation/findings?status=open');
    expect(open.status).toBe(200);
    const listed = open.json.data.find((finding: { subject: { id: string } }) => finding.subject.id === stalled.id);
    expect(listed).toMatchObject({ kind: 'period_not_closed', subject: { type: 'subscription', id: stalled.id }, repaired: false, status: 'open', resolved_at: null });
    expect(open.json.data.every((finding: { status: string }) => finding.status === 'open')).toBe(true);

    const repaired = await api.http.call('GET', '/v1/reconciliation/findings?status=resolved&kind=unknown_payment', undefined, monitoring.headers);
    expect(repaired.status).toBe(200);
    expect(repaired.json.data.length).toBeGreaterThanOrEqual(1);
    expect(repaired.json.data.every((finding: { kind: string; repaired: boolean }) => finding.kind === 'unknown_payment' && finding.repaired)).toBe(true);

    expect((await api.http.call('GET', '/v1/reconciliation/findings', undefined, app.headers)).status).toBe(403);
    expect((await api.http.call('GET', '/v1/reconciliation/findings?status=stale')).status).toBe(422);

    const metrics = await api.http.call('GET', '/metrics', undefined, monitoring.headers);
    expect(metrics.status).toBe(200);
    const count = async (kind: string, resolved: boolean, wasRepaired: boolean) =>
      Number(
        (
          await stack.db('reconciliation_findings')
            .where({ kind, repaired: wasRepaired })
            .where((query) => (resolved ? query.whereNotNull('resolved_at') : query.whereNull('resolved_at')))
            .count({ count: '*' })
        )[0].count,
      );
    const openPeriods = await count('period_not_closed', false, false);
    expect(openPeriods).toBeGreaterThanOrEqual(1);
    expect(metrics.text).toContain(`meterloop_reconciliation_findings{kind="period_not_closed",status="open",repaired="false"} ${openPeriods}`);
    expect(metrics.text).toContain(`meterloop_reconciliation_findings{kind="unknown_payment",status="resolved",repaired="true"} ${await count('unknown_payment', true, true)}`);
    expect(metrics.text).toContain(`meterloop_reconciliation_findings{kind="uncollected_invoice",status="open",repaired="false"} ${await count('uncollected_invoice', false, false)}`);
  } finally {
    await api.close();
  }
}, 120_000);

describe('the janitor schedule', () => {
  let devServer: RunningDevServer;
  let connection: Connection;

  beforeAll(async () => {
    devServer = await startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_REGISTRATIONS, log: () => undefined });
    connection = await Connection.connect({ address: devServer.address });
  }, 120_000);

  afterAll(async () => {
    await connection?.close();
    await devServer?.stop();
  });

  test('is created once however often (and however concurrently) workers ensure it; an update keeps it paused', async () => {
    expect(await ensureJanitorSchedule({ connection, every: '10 minutes' })).toBe('created');
    const again = await Promise.all([ensureJanitorSchedule({ connection, every: '10 minutes' }), ensureJanitorSchedule({ connection, every: '10 minutes' })]);
    expect(again).toEqual(['unchanged', 'unchanged']);

    const client = new Client({ connection });
    const handle = client.schedule.getHandle(JANITOR_SCHEDULE_ID);
    await handle.pause('ops: paused for a migration');
    expect(await ensureJanitorSchedule({ connection, every: '15 minutes' })).toBe('updated');
    const description = await handle.describe();
    expect(description.state.paused).toBe(true);
    expect(description.spec.intervals).toEqual([expect.objectContaining({ every: 15 * 60_000 })]);
    expect(description.action).toMatchObject({ type: 'startWorkflow', workflowType: 'reconciliationWorkflow', taskQueue: TASK_QUEUE });

    const ids = await eventually(async () => {
      const listed: string[] = [];
      for await (const schedule of client.schedule.list()) listed.push(schedule.scheduleId);
      return listed.length > 0 && listed;
    }, 'the schedule to be listed');
    expect(ids.filter((id) => id === JANITOR_SCHEDULE_ID)).toHaveLength(1);
    await handle.delete();
  }, 60_000);

  test('a worker starting as an operator pauses it does not unpause it', async () => {
    const client = new Client({ connection });
    expect(await ensureJanitorSchedule({ connection, every: '10 minutes' })).toBe('created');
    // The operator's pause lands right after the starting worker has read the schedule (a real server; only the
    // moment is forced): the SDK's update would write back the state it read, unpaused.
    const pausingAfterDescribe = new Proxy(connection.workflowService, {
      get(service, property, receiver) {
        if (property !== 'describeSchedule') return Reflect.get(service, property, receiver);
        return async (request: Parameters<typeof service.describeSchedule>[0]) => {
          const described = await service.describeSchedule(request);
          await client.schedule.getHandle(JANITOR_SCHEDULE_ID).pause('ops: paused while a worker starts');
          return described;
        };
      },
    });
    const racingConnection = new Proxy(connection, {
      get: (target, property, receiver) => (property === 'workflowService' ? pausingAfterDescribe : Reflect.get(target, property, receiver)),
    });
    expect(await ensureJanitorSchedule({ connection: racingConnection, every: '10 minutes' })).toBe('unchanged');
    const handle = client.schedule.getHandle(JANITOR_SCHEDULE_ID);
    expect((await handle.describe()).state).toMatchObject({ paused: true, note: 'ops: paused while a worker starts' });
    await handle.delete();
  }, 60_000);
});
