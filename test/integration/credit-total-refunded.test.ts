/**
 * An invoice whose total is negative is money owed to the customer: an immediate downgrade's proration, or an
 * immediate cancellation's credit for unused time, when the credit is larger than what the invoice bills. Before,
 * the workflow noted `credit_issued` and nothing paid it: the invoice stayed open and negative for ever. It is now
 * refunded to the payment of the subscription's latest paid invoice that covers it (store/credit-total-refunds.ts),
 * and that invoice's refundable balance counts the refund, so finance cannot refund the same money again.
 * Time-skipping server and a real Postgres; each test lives in its own year.
 */
import { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import Decimal from 'decimal.js';
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { JANITOR_SCHEDULE_ID, type ReconciliationReport } from '../../contract/janitor';
import { planScheduleTerms, type PlanSettings } from '../../domain/plan-terms';
import { issueCreditNote, refundableBalance, type RefundRow } from '../../store/credit-notes';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import type { FindingRow } from '../../store/janitor';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import { cancelSubscriptionUpdate, changePlanUpdate, SUBSCRIPTION_WORKFLOW_TYPE, SubscriptionState, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { reconciliationWorkflow } from '../../workflows/janitor';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
});

afterAll(async () => stack?.stop());

const settings: PlanSettings = { creditUnusedOnCancel: true, usageGracePeriod: 'PT1M' };

async function subscribe(code: string, fee: string, startAt: string, paymentMethod = 'pm_sandbox_ok') {
  const plan = await insertPlan(db, { code, name: code, billing_interval: 'P1M', flat_fee: fee, settings: settings as Record<string, unknown> });
  const customer = await insertCustomer(db, { payment_method: paymentMethod });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date(startAt));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  return { subscriptionId: row.id, customerId: customer.id, handle };
}

const invoiceOf = (subscriptionId: string, kind: string) => db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind }).first();

/** The credit total's refund, once the workflow has sent it (the update and the result come before or after it). */
const refundOf = (credit: InvoiceRow) =>
  eventually(() => db<RefundRow>('refunds').where({ credit_note_id: credit.id }).whereNot({ status: 'pending' }).first(), `the refund of ${credit.number}`, { timeoutMs: 15_000 });

test('canceled now on a plan that credits unused time: the credit is refunded from the period invoice that paid for it', async () => {
  // 2030, April has 30 days: Apr 1 monthly 30.00 paid; Apr 21 cancel now: 10 days unused, closing invoice -10.00.
  const { subscriptionId, handle } = await subscribe('credit-cancel-2030', '30.00', '2030-04-01T00:00:00Z');
  await stack.advanceTo('2030-04-21T00:00:00Z');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'moving on', requestedBy: 'test' }] });
  expect((await stack.resultOf<SubscriptionState>(handle)).status).toBe('canceled');

  const period = (await invoiceOf(subscriptionId, 'period'))!;
  const closing = (await invoiceOf(subscriptionId, 'closing'))!;
  expect([period.status, period.total, closing.total]).toEqual(['paid', '30.000000000000', '-10.000000000000']);
  // Before: no refund at all, the closing invoice open for ever.
  const refund = await refundOf(closing);
  expect({ status: refund.status, amount: refund.amount, from: refund.invoice_id }).toEqual({ status: 'succeeded', amount: '10.000000000000', from: period.id });
  expect((await db<InvoiceRow>('invoices').where({ id: closing.id }).first())!.status).toBe('paid');
  const [{ refunded }] = await db('sandbox_gateway_refunds').where({ idempotency_key: refund.idempotency_key }).select('amount as refunded');
  expect(new Decimal(refunded).toFixed(2)).toBe('10.00');

  // The period invoice has 20.00 left to refund: finance cannot give the same 10.00 back again.
  expect((await refundableBalance(db, period.id)).remaining.toFixed(2)).toBe('20.00');
  await expect(issueCreditNote(db, { invoiceId: period.id, amount: new Decimal('30.00'), reason: 'all of it', idempotencyKey: 'all', actor: 'test' })).rejects.toMatchObject({
    code: 'refund_exceeds_paid',
  });
});

test('an immediate downgrade whose credit exceeds the new plan’s charge is refunded', async () => {
  // 2031, April: Apr 1 monthly 90.00 paid; Apr 16 (15 of 30 days left) downgrade to 30.00 now:
  // credit -45.00 for the old plan's unused half, charge 15.00 for the new one's: proration -30.00.
  const { subscriptionId, handle } = await subscribe('credit-downgrade-2031', '90.00', '2031-04-01T00:00:00Z');
  const small = await insertPlan(db, { code: 'credit-downgrade-small-2031', name: 'small', billing_interval: 'P1M', flat_fee: '30.00', settings: settings as Record<string, unknown> });
  await stack.advanceTo('2031-04-16T00:00:00Z');
  await handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(small), effective: 'immediate', requestedBy: 'test' }] });

  const period = (await invoiceOf(subscriptionId, 'period'))!;
  const proration = await eventually(() => invoiceOf(subscriptionId, 'proration'), 'the proration invoice');
  expect(proration.total).toBe('-30.000000000000');
  const refund = await refundOf(proration);
  expect({ status: refund.status, amount: refund.amount, from: refund.invoice_id }).toEqual({ status: 'succeeded', amount: '30.000000000000', from: period.id });
  expect((await db<InvoiceRow>('invoices').where({ id: proration.id }).first())!.status).toBe('paid');
  // The subscription goes on under the new plan.
  expect((await handle.query(subscriptionStateQuery)).status).toBe('active');
});

test('a refund the gateway refuses becomes wallet credit, and the credit total is settled', async () => {
  // 2032, April: Apr 1 monthly 30.00 paid with a card that refuses refunds; Apr 11 cancel now: -20.00.
  const { subscriptionId, customerId, handle } = await subscribe('credit-refused-2032', '30.00', '2032-04-01T00:00:00Z', 'pm_sandbox_refund_declined');
  await stack.advanceTo('2032-04-11T00:00:00Z');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'moving on', requestedBy: 'test' }] });
  expect((await stack.resultOf<SubscriptionState>(handle)).status).toBe('canceled');

  const closing = (await invoiceOf(subscriptionId, 'closing'))!;
  expect(closing.total).toBe('-20.000000000000');
  expect(await refundOf(closing)).toMatchObject({ status: 'failed', failure_code: 'refund_declined' });
  const grant = await db('wallet_grants as g').join('wallets as w', 'w.id', 'g.wallet_id').where('w.customer_id', customerId).first('g.amount', 'g.source');
  expect({ amount: new Decimal(grant.amount).toFixed(2), source: grant.source }).toEqual({ amount: '20.00', source: 'goodwill' });
  expect((await db<InvoiceRow>('invoices').where({ id: closing.id }).first())!.status).toBe('paid');
});

/** One janitor run that acts at once on anything open (its default margins wait an hour). */
async function runJanitor(): Promise<ReconciliationReport> {
  const handle = await env.client.workflow.start(reconciliationWorkflow, {
    taskQueue: TASK_QUEUE,
    workflowId: `${JANITOR_SCHEDULE_ID}-credit-${randomUUID()}`,
    args: [{ margins: { pendingPaymentMs: 0, uncollectedInvoiceMs: 0 } }],
  });
  // Waiting through the time-skipping client would let server time jump; the janitor has no timers to skip.
  return new Client({ connection: env.connection }).workflow.getHandle(handle.workflowId).result();
}

test('the janitor pays back a credit total no refund paid (issued before this change), once a paid invoice covers it', async () => {
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: 'credit-janitor-2033', name: 'janitor', billing_interval: 'P1M', flat_fee: '30.00' });
  const { row } = await insertSubscription(db, customer, plan, new Date('2033-04-01T00:00:00Z'));
  const invoice = async (kind: string, total: string): Promise<InvoiceRow> =>
    (
      await db<InvoiceRow>('invoices')
        .insert({
          number: `CT-${randomUUID().slice(0, 8)}`,
          customer_id: customer.id,
          subscription_id: row.id,
          kind,
          status: 'open',
          currency: 'USD',
          period_start: new Date('2033-04-01T00:00:00Z'),
          period_end: new Date('2033-05-01T00:00:00Z'),
          total,
          finalized_at: new Date(Date.now() - 60_000),
        })
        .returning('*')
    )[0];
  const findingOf = (id: string) => db<FindingRow>('reconciliation_findings').where({ subject_id: id, kind: 'unrefunded_credit' }).orderBy('first_seen', 'desc').first();

  // Nothing of the subscription is paid yet: reported, left open.
  const credit = await invoice('closing', '-10.00');
  await runJanitor();
  expect(await findingOf(credit.id)).toMatchObject({ repaired: false, resolved_at: null });
  expect((await findingOf(credit.id))!.detail).toContain('no paid invoice of the subscription for the credited time has 10.00 USD left to refund');

  // Its period invoice is paid since: the next run refunds the credit from that payment.
  const period = await invoice('period', '30.00');
  const activities = createActivities({ db, gateway: new SandboxGateway(db) });
  expect(await activities.chargeInvoice({ invoiceId: period.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  await runJanitor();
  expect(await db<RefundRow>('refunds').where({ credit_note_id: credit.id }).first()).toMatchObject({ status: 'succeeded', amount: '10.000000000000', invoice_id: period.id });
  expect((await db<InvoiceRow>('invoices').where({ id: credit.id }).first())!.status).toBe('paid');
  expect(await findingOf(credit.id)).toMatchObject({ repaired: true });
  // Paid back: the next run finds nothing, and the earlier report is resolved.
  await runJanitor();
  expect(await db<FindingRow>('reconciliation_findings').where({ subject_id: credit.id, kind: 'unrefunded_credit' }).whereNull('resolved_at')).toEqual([]);
});

test("a credit is refunded only from an invoice of the credited time: never from last month's payment", async () => {
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: 'credit-own-period-2034', name: 'own period', billing_interval: 'P1M', flat_fee: '30.00' });
  const { row } = await insertSubscription(db, customer, plan, new Date('2034-03-01T00:00:00Z'));
  const activities = createActivities({ db, gateway: new SandboxGateway(db) });
  const invoice = async (kind: string, total: string, start: string, end: string): Promise<InvoiceRow> =>
    (
      await db<InvoiceRow>('invoices')
        .insert({ number: `OP-${randomUUID().slice(0, 8)}`, customer_id: customer.id, subscription_id: row.id, kind, status: 'open', currency: 'USD', period_start: new Date(start), period_end: new Date(end), total, finalized_at: new Date() })
        .returning('*')
    )[0];
  const march = await invoice('period', '30.00', '2034-03-01T00:00:00Z', '2034-04-01T00:00:00Z');
  const april = await invoice('period', '30.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  for (const paid of [march, april]) expect(await activities.chargeInvoice({ invoiceId: paid.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  // Finance refunds April in full; then a downgrade on Apr 16 credits April's unused half.
  await issueCreditNote(db, { invoiceId: april.id, amount: new Decimal('30.00'), reason: 'outage', idempotencyKey: 'all-of-april', actor: 'test' });
  const credit = await invoice('proration', '-15.00', '2034-04-16T00:00:00Z', '2034-05-01T00:00:00Z');

  // Before: refunded from March's payment (15.00 of a month the customer used in full).
  expect(await activities.refundCreditTotal({ invoiceId: credit.id })).toMatchObject({ status: 'not_refundable' });
  expect(await db('refunds').where({ credit_note_id: credit.id })).toEqual([]);
  expect((await refundableBalance(db, march.id)).remaining.toFixed(2)).toBe('30.00');
});
