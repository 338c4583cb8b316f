/**
 * A plan change's proration invoice declined where the main loop cannot start dunning on it at once: inside the
 * period's usage grace window (the period's own invoice is charged, and declined, right after) and past the period's
 * end (the change finished after the boundary). Each declined invoice is dunned in turn until paid.
 *
 * Before, the period invoice's decline replaced the proration in dunning, and a decline past the period end was
 * dropped at the handover to the next period (status back to active): the proration invoice stayed open after its
 * one failed attempt, never charged again. Time-skipping server and a real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { planScheduleTerms } from '../../domain/plan-terms';
import type { Charge } from '../../domain/rating';
import type { CustomerRow } from '../../store/customers';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import {
  cancelSubscriptionUpdate,
  changePlanUpdate,
  paymentMethodUpdatedSignal,
  retryFailedStepUpdate,
  SUBSCRIPTION_WORKFLOW_TYPE,
  subscriptionStateQuery,
  TASK_QUEUE,
} from '../../workflows/definitions';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { eventually } from '../support/eventually';
import { runHistories } from '../support/histories';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
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

async function subscribe(code: string, startAt: string, charges: Charge[] = [], dunning?: { retryAfter: string[]; finalAction: 'cancel' | 'suspend' }) {
  const settings = { usageGracePeriod: 'PT1H', ...(dunning && { dunning }) };
  const basic = await insertPlan(db, { code: `${code}-basic`, billing_interval: 'P1M', flat_fee: '10.00', settings, charges: charges as unknown[] });
  // Dear enough that the hour left of a month prorates to a charge.
  const pro = await insertPlan(db, { code: `${code}-pro`, billing_interval: 'P1M', flat_fee: '7440.00', settings, charges: charges as unknown[] });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, basic, new Date(startAt));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  return { subscriptionId: row.id, customer, handle, pro: planScheduleTerms(pro) };
}

const setCard = (customer: CustomerRow, paymentMethod: string) => db('customers').where({ id: customer.id }).update({ payment_method: paymentMethod });

/** Every invoice as [kind, status, its attempts' outcomes], oldest first. */
async function collected(subscriptionId: string): Promise<unknown[]> {
  const invoices = await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy('created_at');
  return Promise.all(
    invoices.map(async (invoice) => [invoice.kind, invoice.status, (await db('payments').where({ invoice_id: invoice.id }).orderBy('attempt')).map((payment: { status: string }) => payment.status)]),
  );
}

async function replaysEveryRun(workflowId: string): Promise<void> {
  const bundle = await workflowBundle();
  for (const [index, history] of (await runHistories(env.client, workflowId)).entries()) {
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, `proration-dunning-run-${index}`);
  }
}

test('declined in the grace window, then the period invoice declined too: both are dunned, one after the other, and paid', async () => {
  // Timeline (2030): Jan 1 basic 10.00 (metered, grace 1 h), paid; Jan 31 the card starts declining.
  //   Feb 1 00:10 immediate change to pro: the proration invoice declines -> past_due.
  //   Feb 1 01:00 the grace window ends: February's invoice declines too; it waits its turn.
  //   Feb 2 01:00 the proration's retry declines; Feb 3 a working card -> the proration is paid at once;
  //   then February's invoice is dunned: its retry a day later pays it -> active.
  const { subscriptionId, customer, handle, pro } = await subscribe('grace', '2030-01-01T00:00:00Z', tokens);
  await stack.advanceTo('2030-01-31T00:00:00Z');
  await setCard(customer, 'pm_sandbox_declined');
  await stack.advanceTo('2030-02-01T00:10:00Z', 60_000);
  const change = await handle.executeUpdate(changePlanUpdate, { args: [{ plan: pro, effective: 'immediate', requestedBy: 'test' }] });
  expect(change.invoice?.status).toBe('open');

  await stack.advanceTo('2030-02-03T00:00:00Z', HOUR);
  await setCard(customer, 'pm_sandbox_ok');
  await handle.signal(paymentMethodUpdatedSignal);
  await stack.advanceTo('2030-02-10T00:00:00Z', HOUR);
  expect(await collected(subscriptionId)).toEqual([
    ['period', 'paid', ['succeeded']],
    ['proration', 'paid', ['failed', 'failed', 'succeeded']],
    ['period', 'paid', ['failed', 'succeeded']],
  ]);
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({ status: 'active', dunning: null, planCode: 'grace-pro' });
  await replaysEveryRun(handle.workflowId);
  await handle.terminate('test done');
});

test('declined past the period end (the change waited for ops across the boundary): dunned before the next period opens', async () => {
  // Timeline (2031): Jan 1 basic 10.00, paid. Jan 31 23:00 immediate change to pro; its proration invoice is refused
  //   by Postgres (a check constraint) -> needs_attention inside the update. Feb 1 01:00, past the boundary, ops drop
  //   the constraint and retry, the card now declining: the proration (the hour left of January) declines.
  //   Feb 3 a working card -> the proration is paid, then February opens on pro and is billed.
  const { subscriptionId, customer, handle, pro } = await subscribe('boundary', '2031-01-01T00:00:00Z');
  await stack.advanceTo('2031-01-31T00:00:00Z');
  await stack.advanceTo('2031-01-31T23:00:00Z', HOUR);
  await db.raw(`ALTER TABLE invoices ADD CONSTRAINT audit_refused_proration CHECK (kind <> 'proration' OR subscription_id <> '${subscriptionId}')`);
  try {
    const change = await handle.startUpdate(changePlanUpdate, { args: [{ plan: pro, effective: 'immediate', requestedBy: 'test' }], updateId: 'boundary-change', waitForStage: 'ACCEPTED' });
    await eventually(async () => (await handle.query(subscriptionStateQuery)).status === 'needs_attention', 'the proration to need attention');
    await stack.advanceTo('2031-02-01T01:00:00Z', HOUR);
    await setCard(customer, 'pm_sandbox_declined');
    await db.raw('ALTER TABLE invoices DROP CONSTRAINT IF EXISTS audit_refused_proration');
    await handle.executeUpdate(retryFailedStepUpdate, { args: [{ requestedBy: 'test' }] });
    expect((await change.result()).invoice?.status).toBe('open');
  } finally {
    await db.raw('ALTER TABLE invoices DROP CONSTRAINT IF EXISTS audit_refused_proration');
  }

  await stack.advanceTo('2031-02-03T00:00:00Z', HOUR);
  await setCard(customer, 'pm_sandbox_ok');
  await handle.signal(paymentMethodUpdatedSignal);
  await stack.advanceTo('2031-02-04T00:00:00Z', HOUR);
  const invoices = await collected(subscriptionId);
  expect(invoices[1]).toEqual(['proration', 'paid', expect.arrayContaining(['failed', 'succeeded'])]);
  expect(invoices.slice(2)).toEqual([['period', 'paid', ['succeeded']]]);
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({ status: 'active', dunning: null, planCode: 'boundary-pro' });
  await replaysEveryRun(handle.workflowId);
  await handle.terminate('test done');
});

// Declined for good (an expired card) while the proration is in dunning: the period invoice waits its turn marked not
// retryable. Before, once a working card paid the proration, that invoice went straight to the plan's final step with
// the card that had just paid on file, never tried (patch declined-for-good-retried-after-payment).
const oneRetry = (finalAction: 'cancel' | 'suspend') => ({ retryAfter: ['P1D'], finalAction });

test('an invoice declined for good while the proration is dunned is dunned in its turn once a working card paid the proration', async () => {
  // Timeline (2032), dunning: one retry after a day, then suspend. Jan 1 basic 10.00, paid; Jan 31 the card expires.
  //   Feb 1 00:10 immediate change to pro: the proration declines (expired_card, not retryable) -> past_due;
  //   Feb 1 01:00 February's invoice (pro, 7440.00) declines too, not retryable: it waits its turn;
  //            the proration goes to the final step at once -> suspended.
  //   Feb 3 a working card: the proration is paid at once; February's invoice is dunned: Feb 4 its retry pays -> active.
  //   Before: February's invoice went to the final step at once -> suspended again, 7440.00 open, never tried.
  const { subscriptionId, customer, handle, pro } = await subscribe('for-good', '2032-01-01T00:00:00Z', tokens, oneRetry('suspend'));
  await stack.advanceTo('2032-01-31T00:00:00Z');
  await setCard(customer, 'pm_sandbox_expired');
  await stack.advanceTo('2032-02-01T00:10:00Z', 60_000);
  await handle.executeUpdate(changePlanUpdate, { args: [{ plan: pro, effective: 'immediate', requestedBy: 'test' }] });
  await stack.advanceTo('2032-02-03T00:00:00Z', HOUR);
  expect((await handle.query(subscriptionStateQuery)).status).toBe('suspended');

  await setCard(customer, 'pm_sandbox_ok');
  await handle.signal(paymentMethodUpdatedSignal);
  await stack.advanceTo('2032-02-10T00:00:00Z', HOUR);
  expect(await collected(subscriptionId)).toEqual([
    ['period', 'paid', ['succeeded']],
    ['proration', 'paid', ['failed', 'succeeded']],
    ['period', 'paid', ['failed', 'succeeded']],
  ]);
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({ status: 'active', dunning: null });
  await replaysEveryRun(handle.workflowId);
  await handle.terminate('test done');
});

test('after a cancellation now, an invoice declined for good is dunned in its turn once the proration was paid', async () => {
  // Timeline (2033), dunning: one retry after a day, then cancel. Jan 1 basic 10.00, paid; Jan 31 the card declines.
  //   Feb 1 00:10 immediate change to pro: the proration declines (retryable) -> past_due, its retry announced Feb 2 00:10;
  //   Feb 1 00:30 the card expires; 01:00 February's invoice declines (expired_card, not retryable): it waits its turn.
  //   Feb 1 02:00 cancel now; a working card is posted. Feb 2 00:10 the proration's retry pays it; February's invoice is
  //   dunned after the end: Feb 3 its retry pays it. Before: marked uncollectible at once, 7440.00 never tried.
  const { subscriptionId, customer, handle, pro } = await subscribe('for-good-ended', '2033-01-01T00:00:00Z', tokens, oneRetry('cancel'));
  await stack.advanceTo('2033-01-31T00:00:00Z');
  await setCard(customer, 'pm_sandbox_declined');
  await stack.advanceTo('2033-02-01T00:10:00Z', 60_000);
  await handle.executeUpdate(changePlanUpdate, { args: [{ plan: pro, effective: 'immediate', requestedBy: 'test' }] });
  await stack.advanceTo('2033-02-01T00:30:00Z', 60_000);
  await setCard(customer, 'pm_sandbox_expired');
  await stack.advanceTo('2033-02-01T02:00:00Z', 600_000);
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'leaving', requestedBy: 'test' }] });
  await setCard(customer, 'pm_sandbox_ok');
  await stack.advanceTo('2033-02-05T00:00:00Z', HOUR);
  expect(await collected(subscriptionId)).toEqual([
    ['period', 'paid', ['succeeded']],
    ['proration', 'paid', ['failed', 'succeeded']],
    ['period', 'paid', ['failed', 'succeeded']],
    ['closing', 'paid', []], // no usage, no credit: nothing to collect
  ]);
  expect((await handle.query(subscriptionStateQuery)).status).toBe('canceled');
  await replaysEveryRun(handle.workflowId);
  await handle.terminate('test done').catch(() => undefined);
});
