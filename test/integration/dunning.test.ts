/**
 * Dunning on a time-skipping Temporal server, a real Postgres and the sandbox gateway's test cards: failed charges
 * are retried as separate, visible attempts on the plan's schedule; a new payment method retries at once; the
 * plan's final action cancels or suspends. Each test lives in its own year (server time only moves forward).
 */
import { Client, WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import type { PlanSettings } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { SEARCH_ATTRIBUTES, SUBSCRIPTION_WORKFLOW_TYPE, SubscriptionState, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { recordHistory } from '../support/histories';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
  api = await serve(createApp({ db, temporal: env.client }), { headers: (await createTestApiKey(db, 'admin')).headers });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

const advanceTo = (instant: string): Promise<void> => stack.advanceTo(instant, 6 * 3_600_000);

const DUNNING_CANCEL: PlanSettings = { dunning: { retryAfter: ['P1D', 'P3D', 'P5D', 'P7D'], finalAction: 'cancel' } };
const DUNNING_SUSPEND: PlanSettings = { dunning: { retryAfter: ['P1D', 'P3D'], finalAction: 'suspend' } };

async function subscribe(code: string, settings: PlanSettings, paymentMethod: string, startAt: string) {
  const plan = await insertPlan(db, { code, name: code, billing_interval: 'P1M', flat_fee: '50.00', settings: settings as Record<string, unknown> });
  const customer = await insertCustomer(db, { payment_method: paymentMethod });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date(startAt));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  return { subscriptionId: row.id, customerId: customer.id, handle };
}

const state = (handle: WorkflowHandle): Promise<SubscriptionState> => handle.query(subscriptionStateQuery);

async function firstInvoice(subscriptionId: string): Promise<InvoiceRow> {
  return (await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy('period_start').first())!;
}

async function attempts(invoiceId: string): Promise<Array<[number, string]>> {
  const rows = await db('payments').where({ invoice_id: invoiceId }).orderBy('attempt').select('attempt', 'status');
  return rows.map((row: { attempt: number; status: string }) => [row.attempt, row.status]);
}

async function succeededCharges(invoiceId: string): Promise<number> {
  const rows = await db('sandbox_gateway_charges').where('idempotency_key', 'like', `payment:${invoiceId}:%`).andWhere({ status: 'succeeded' });
  return rows.length;
}

async function searchAttributes(handle: WorkflowHandle): Promise<{ status: unknown; pastDue: unknown }> {
  const description = await handle.describe();
  return { status: description.typedSearchAttributes.get(SEARCH_ATTRIBUTES.status), pastDue: description.typedSearchAttributes.get(SEARCH_ATTRIBUTES.pastDue) };
}

test('a decline, then success on retry two: past due in between, active and paid after', async () => {
  // Timeline (2027): Jan 1 attempt 1 declines -> past_due; Jan 2 attempt 2 declines; Jan 5 attempt 3 succeeds -> active.
  const { subscriptionId, handle } = await subscribe('dunning-ok-2027', DUNNING_CANCEL, 'pm_sandbox_declines_2_then_ok', '2027-01-01T00:00:00Z');
  await advanceTo('2027-01-01T12:00:00Z');
  expect(await state(handle)).toMatchObject({ status: 'past_due', dunning: { attempt: 1, nextAttemptAt: expect.stringMatching(/^2027-01-02T00:00/) } });
  expect(await searchAttributes(handle)).toEqual({ status: 'past_due', pastDue: true });
  await advanceTo('2027-01-06T00:00:00Z');
  const invoice = await firstInvoice(subscriptionId);
  expect(await attempts(invoice.id)).toEqual([
    [1, 'failed'],
    [2, 'failed'],
    [3, 'succeeded'],
  ]);
  expect(invoice.status).toBe('paid');
  expect(await succeededCharges(invoice.id)).toBe(1);
  expect(await state(handle)).toMatchObject({ status: 'active', dunning: null });
  expect(await searchAttributes(handle)).toEqual({ status: 'active', pastDue: false });
  await recordHistory(handle, 'subscription-dunning-recovered');
  await handle.terminate('test done');
});

test('every retry fails: the invoice becomes uncollectible and the subscription is canceled', async () => {
  // Timeline (2028): Jan 1 declines; retries Jan 2, Jan 5, Jan 10, Jan 17 decline; then uncollectible, canceled.
  const { subscriptionId, handle } = await subscribe('dunning-cancel-2028', DUNNING_CANCEL, 'pm_sandbox_declined', '2028-01-01T00:00:00Z');
  await advanceTo('2028-01-18T00:00:00Z');
  const invoice = await firstInvoice(subscriptionId);
  expect((await attempts(invoice.id)).map(([attempt, status]) => `${attempt}:${status}`)).toEqual(['1:failed', '2:failed', '3:failed', '4:failed', '5:failed']);
  expect(invoice.status).toBe('uncollectible');
  expect((await handle.describe()).status.name).toBe('COMPLETED');
  expect((await db('subscriptions').where({ id: subscriptionId }).first()).status).toBe('canceled');
  expect(await db('outbox').where({ aggregate_id: subscriptionId, event_type: 'dunning.retry_scheduled' })).toHaveLength(4);
});

test('the suspend policy stops billing and usage until a new card pays, then resumes', async () => {
  // Timeline (2029): Jan 1 declines; retries Jan 2, Jan 5 decline -> suspended (usage refused);
  //   Jan 8 the customer adds a working card -> paid at once -> active.
  const { subscriptionId, customerId, handle } = await subscribe('dunning-suspend-2029', DUNNING_SUSPEND, 'pm_sandbox_declined', '2029-01-01T00:00:00Z');
  await advanceTo('2029-01-06T00:00:00Z');
  expect((await state(handle)).status).toBe('suspended');
  expect((await db('subscriptions').where({ id: subscriptionId }).first()).usage_blocked).toBe(true);
  await advanceTo('2029-01-08T00:00:00Z');
  const updated = await api.call('POST', `/v1/customers/${customerId}/payment-method`, { payment_method: 'pm_sandbox_ok' });
  expect(updated.status).toBe(200);
  await advanceTo('2029-01-08T00:05:00Z');
  expect((await state(handle)).status).toBe('active');
  const invoice = await firstInvoice(subscriptionId);
  expect(invoice.status).toBe('paid');
  expect(await succeededCharges(invoice.id)).toBe(1);
  expect((await db('subscriptions').where({ id: subscriptionId }).first()).usage_blocked).toBe(false);
  await handle.terminate('test done');
});

test('a payment-method update mid-dunning retries at once instead of waiting for the next attempt', async () => {
  // Timeline (2030): Jan 1 00:00 declines (next attempt Jan 2); Jan 1 06:00 new card -> paid within minutes.
  const { subscriptionId, customerId, handle } = await subscribe('dunning-card-2030', DUNNING_CANCEL, 'pm_sandbox_declined', '2030-01-01T00:00:00Z');
  await advanceTo('2030-01-01T06:00:00Z');
  expect((await state(handle)).status).toBe('past_due');
  await api.call('POST', `/v1/customers/${customerId}/payment-method`, { payment_method: 'pm_sandbox_ok' });
  await advanceTo('2030-01-01T06:05:00Z');
  const invoice = await firstInvoice(subscriptionId);
  expect(await attempts(invoice.id)).toEqual([
    [1, 'failed'],
    [2, 'succeeded'],
  ]);
  expect((await state(handle)).status).toBe('active');
  await handle.terminate('test done');
});

test('a non-retryable decline skips the retries and goes straight to the final step', async () => {
  // Timeline (2031): Jan 1 expired card -> no retries -> uncollectible and canceled the same day.
  const { subscriptionId, handle } = await subscribe('dunning-expired-2031', DUNNING_CANCEL, 'pm_sandbox_expired', '2031-01-01T00:00:00Z');
  await advanceTo('2031-01-01T01:00:00Z');
  const invoice = await firstInvoice(subscriptionId);
  expect(await attempts(invoice.id)).toEqual([[1, 'failed']]);
  expect(invoice.status).toBe('uncollectible');
  expect((await new Client({ connection: env.connection }).workflow.getHandle(handle.workflowId).describe()).status.name).toBe('COMPLETED');
  expect((await db('subscriptions').where({ id: subscriptionId }).first()).status).toBe('canceled');
});

test('months spent suspended are not billed when the customer pays: the period resumes where suspension stopped it', async () => {
  // Timeline (2032; a leap year): Jan 1 the January invoice (50.00) declines; retries Jan 2, Jan 5 decline ->
  //   suspended on Jan 5 (usage refused, no new periods). Apr 10 a working card pays January's invoice.
  //   Suspended 96 days: like a pause, January's period (paid for, used Jan 1-5) moves by exactly that time and now
  //   ends May 7 (Feb 1 + 96 days: the 27 paid days left on Jan 5 are served from Apr 10), and nothing is billed for
  //   February, March or early April, when the subscription gave no service. Before: on paying, February, March and
  //   April were each invoiced at once; and with the anchor moved as an instant (Apr 6), the period ended May 6.
  const { subscriptionId, customerId, handle } = await subscribe('dunning-suspend-long-2032', DUNNING_SUSPEND, 'pm_sandbox_declined', '2032-01-01T00:00:00Z');
  await advanceTo('2032-01-06T00:00:00Z');
  expect((await state(handle)).status).toBe('suspended');
  await advanceTo('2032-04-10T00:00:00Z');
  expect(await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId })).toHaveLength(1);
  await api.call('POST', `/v1/customers/${customerId}/payment-method`, { payment_method: 'pm_sandbox_ok' });
  await advanceTo('2032-04-10T00:05:00Z');
  expect((await state(handle)).status).toBe('active');
  const invoices = await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy('period_start');
  expect(invoices.map((invoice) => [invoice.period_start.toISOString(), invoice.status])).toEqual([['2032-01-01T00:00:00.000Z', 'paid']]);
  // Moved by the time suspended to the millisecond, as a pause moves it: within a minute of May 7 here.
  const movedEnd = new Date((await state(handle)).currentPeriod!.end);
  expect(Math.abs(movedEnd.getTime() - Date.parse('2032-05-07T00:00:00Z'))).toBeLessThan(60_000);
  // The next period opens at the moved boundary and is billed once.
  await advanceTo('2032-05-07T02:00:00Z');
  const after = await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy('period_start');
  expect(after.map((invoice) => invoice.period_start.getTime())).toEqual([Date.parse('2032-01-01T00:00:00Z'), movedEnd.getTime()]);
  await handle.terminate('test done');
});
