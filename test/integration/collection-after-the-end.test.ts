/**
 * What a subscription billed is collected after it ends too. Before, the closing invoice was charged once and, if
 * declined, left open for good (the workflow ended with it, never dunned, never marked uncollectible); and an invoice
 * in dunning when the customer canceled now was abandoned the same way. Now the subscription is canceled when the
 * cancellation takes effect, and then each unpaid invoice is dunned in turn for what is left of the plan's schedule;
 * what dunning cannot collect is marked uncollectible. Time-skipping server and a real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { retryDunningOnNewPaymentMethod } from '../../api/dunning-retry';
import { Worker } from '@temporalio/worker';
import type { Charge } from '../../domain/rating';
import type { CustomerRow } from '../../store/customers';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { listIdleOpenInvoices } from '../../store/janitor';
import { unpaidSubscriptionWorkflowIds } from '../../store/subscriptions';
import { insertUsageEvents } from '../../store/usage';
import { cancelSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { runHistories } from '../support/histories';
import { workflowBundle } from '../support/temporal';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
  await db('billable_metrics').insert({ code: 'tokens', name: 'Tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens' });
});

afterAll(async () => stack?.stop());

const HOUR = 3_600_000;
const tokens: Charge[] = [{ metricCode: 'tokens', price: { model: 'per_unit', unitPrice: '0.01' } }];

async function subscribe(code: string, startAt: string, dunning?: unknown) {
  const settings = { usageGracePeriod: 'PT1H', ...(dunning ? { dunning } : {}) };
  const plan = await insertPlan(db, { code, billing_interval: 'P1M', flat_fee: '10.00', settings, charges: tokens as unknown[] });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date(startAt));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  return { subscriptionId: row.id, customer, handle };
}

const setCard = (customer: CustomerRow, paymentMethod: string) => db('customers').where({ id: customer.id }).update({ payment_method: paymentMethod });
const useTokens = (customer: CustomerRow, id: string, at: string, count: number) =>
  insertUsageEvents(db, [{ customerId: customer.id, eventId: id, eventType: 'llm.request', occurredAt: new Date(at), properties: { tokens: count } }]);

/** Every invoice as [kind, total, status, its attempts' outcomes], oldest first. */
async function collected(subscriptionId: string): Promise<unknown[]> {
  const invoices = await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy('created_at');
  return Promise.all(
    invoices.map(async (invoice) => [
      invoice.kind,
      Number(invoice.total).toFixed(2),
      invoice.status,
      (await db('payments').where({ invoice_id: invoice.id }).orderBy('attempt')).map((payment: { status: string }) => payment.status),
    ]),
  );
}

async function replaysEveryRun(workflowId: string): Promise<void> {
  const bundle = await workflowBundle();
  for (const [index, history] of (await runHistories(env.client, workflowId)).entries()) {
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, `collection-after-the-end-run-${index}`);
  }
}

const statusOf = async (subscriptionId: string) => (await db('subscriptions').where({ id: subscriptionId }).first()).status;

test('a declined closing invoice is dunned after a cancellation at the period end, and paid', async () => {
  // Timeline (2030): Jan 1 10.00 in advance, paid. Jan 15 1,000 tokens (10.00). Jan 20 cancel at the period end.
  //   Jan 31 the card starts declining. Feb 1 01:00 the closing invoice (10.00 of tokens) declines; the subscription
  //   is canceled. Feb 2 01:00 its first retry declines. Feb 3 a working card: paid at once.
  const { subscriptionId, customer, handle } = await subscribe('closing-paid', '2030-01-01T00:00:00Z');
  await stack.advanceTo('2030-01-15T00:00:00Z');
  await useTokens(customer, 'c1', '2030-01-15T00:00:00Z', 1000);
  await stack.advanceTo('2030-01-20T00:00:00Z');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'moving on', requestedBy: 'test' }] });
  await stack.advanceTo('2030-01-31T00:00:00Z');
  await setCard(customer, 'pm_sandbox_declined');
  await stack.advanceTo('2030-02-02T12:00:00Z', HOUR);
  expect(await collected(subscriptionId)).toEqual([
    ['period', '10.00', 'paid', ['succeeded']],
    ['closing', '10.00', 'open', ['failed', 'failed']],
  ]);
  // Canceled when the cancellation took effect; the workflow goes on collecting what it billed.
  expect(await statusOf(subscriptionId)).toBe('canceled');
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({ status: 'canceled', dunning: { attempt: 2 } });
  expect((await handle.describe()).status.name).toBe('RUNNING');
  // Its status no longer says so, but the API's new-payment-method hook and the janitor see the collection going on.
  expect(await unpaidSubscriptionWorkflowIds(db, customer.id, await stack.now())).toEqual([handle.workflowId]);
  expect((await listIdleOpenInvoices(db, await stack.now(), 100)).map((row) => row.subscription_id)).not.toContain(subscriptionId);

  await stack.advanceTo('2030-02-03T00:00:00Z', HOUR);
  await setCard(customer, 'pm_sandbox_ok');
  await retryDunningOnNewPaymentMethod(db, env.client)({ customerId: customer.id, paymentMethod: 'pm_sandbox_ok', previousPaymentMethod: 'pm_sandbox_declined' });
  await stack.resultOf(handle);
  expect(await collected(subscriptionId)).toEqual([
    ['period', '10.00', 'paid', ['succeeded']],
    ['closing', '10.00', 'paid', ['failed', 'failed', 'succeeded']],
  ]);
  expect(await statusOf(subscriptionId)).toBe('canceled');
  await replaysEveryRun(handle.workflowId);
});

test('a cancellation now during dunning: the unpaid invoice and the closing invoice are dunned to the end, then uncollectible', async () => {
  // Timeline (2031): Jan 1 paid. Jan 31 the card starts declining. Feb 1 February's 10.00 declines: past due.
  //   Feb 5 the customer cancels now: the closing invoice (500 tokens, 5.00) declines too. February's invoice goes on
  //   with its retries (Feb 2 before the cancel, then Feb 5+3 d, +5 d, +7 d), then the closing invoice has its own;
  //   neither is ever paid: both end uncollectible, and the subscription is canceled.
  const { subscriptionId, customer, handle } = await subscribe('cancel-now-dunning', '2031-01-01T00:00:00Z', { retryAfter: ['P1D', 'P3D'], finalAction: 'suspend' });
  await stack.advanceTo('2031-01-31T00:00:00Z');
  await setCard(customer, 'pm_sandbox_declined');
  await stack.advanceTo('2031-02-03T00:00:00Z', HOUR);
  await useTokens(customer, 'c2', '2031-02-03T00:00:00Z', 500);
  await stack.advanceTo('2031-02-05T00:00:00Z', HOUR);
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'leaving', requestedBy: 'test' }] });
  await stack.resultOf(handle);
  const invoices = await collected(subscriptionId);
  expect(invoices).toEqual([
    ['period', '10.00', 'paid', ['succeeded']],
    ['period', '10.00', 'uncollectible', ['failed', 'failed', 'failed']],
    ['closing', '5.00', 'uncollectible', ['failed', 'failed', 'failed']],
  ]);
  expect(await statusOf(subscriptionId)).toBe('canceled');
  await replaysEveryRun(handle.workflowId);
});

test('after dunning gave up and canceled, the declined closing invoice gets its own dunning, then is uncollectible', async () => {
  // Timeline (2032), one retry a day after, then cancel: Jan 15 500 tokens (5.00). Jan 31 the card starts declining.
  //   Feb 1 01:00 February's invoice (10.00 + January's 5.00) declines; Feb 2 01:00 its retry declines: dunning gives
  //   up and cancels. The closing invoice (Feb 1's 300 tokens, 3.00) declines; Feb 3 its own retry declines: it is
  //   uncollectible too. February's invoice, given up by dunning, is not marked a second time.
  const { subscriptionId, customer, handle } = await subscribe('dunning-gave-up', '2032-01-01T00:00:00Z', { retryAfter: ['P1D'], finalAction: 'cancel' });
  await stack.advanceTo('2032-01-15T00:00:00Z');
  await useTokens(customer, 'c3', '2032-01-15T00:00:00Z', 500);
  await stack.advanceTo('2032-01-31T00:00:00Z');
  await setCard(customer, 'pm_sandbox_declined');
  await stack.advanceTo('2032-02-01T12:00:00Z', HOUR);
  await useTokens(customer, 'c4', '2032-02-01T12:00:00Z', 300);
  await stack.resultOf(handle);
  expect(await collected(subscriptionId)).toEqual([
    ['period', '10.00', 'paid', ['succeeded']],
    ['period', '15.00', 'uncollectible', ['failed', 'failed']],
    ['closing', '3.00', 'uncollectible', ['failed', 'failed']],
  ]);
  const invoiceIds = (await db('invoices').where({ subscription_id: subscriptionId }).select('id')).map((row: { id: string }) => row.id);
  const markings = await db('audit_log').where({ action: 'invoice.marked_uncollectible' }).whereIn('subject_id', invoiceIds);
  expect(markings).toHaveLength(2);
  expect(await statusOf(subscriptionId)).toBe('canceled');
  await replaysEveryRun(handle.workflowId);
});
