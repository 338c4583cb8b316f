/**
 * A cancellation now while the period's invoice is past due, on a plan that credits unused time. A paying customer
 * who cancels now gets the unused part of the period back; one whose invoice was in dunning got nothing: no closing
 * invoice at all, and the whole period's fee stayed owed for part of the period. Now the credit is issued as for any
 * cancellation now, and taken off what the unpaid invoice still owes (store/credit-total-refunds.ts), so dunning
 * after the end asks only for the time used. Time-skipping server and a real Postgres; each test in its own year.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { PlanSettings } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { cancelSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, TASK_QUEUE } from '../../workflows/definitions';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
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

async function invoiceLines(subscriptionId: string): Promise<Array<[string, string, string]>> {
  const invoices = await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy('created_at');
  const rows: Array<[string, string, string]> = [];
  for (const invoice of invoices) {
    const lines = await db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id }).orderBy('position');
    for (const line of lines) rows.push([invoice.kind, line.kind, Number(line.amount).toFixed(2)]);
  }
  return rows;
}

test('canceled now while the period invoice is in dunning, the unused time is credited and taken off that invoice', async () => {
  // Timeline (2030, April has 30 days), the card declines throughout:
  //   Apr 1   monthly 30.00 for [Apr 1, May 1), declined: past due, retries every 10 days
  //   Apr 21  cancel now: 10 days of the period unused -> credit -10.00, taken off the unpaid 30.00 (20.00 owed)
  const settings: PlanSettings = { creditUnusedOnCancel: true, usageGracePeriod: 'PT1M', dunning: { retryAfter: ['P10D', 'P10D', 'P10D'], finalAction: 'suspend' } };
  const plan = await insertPlan(db, { code: 'dunning-cancel-2030', name: 'Dunning cancel', billing_interval: 'P1M', flat_fee: '30.00', settings: settings as Record<string, unknown> });
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declined' });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2030-04-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo('2030-04-02T00:00:00Z');
  await eventually(async () => (await db('subscriptions').where({ id: row.id }).first())?.status === 'past_due', 'the period invoice declined');

  await stack.advanceTo('2030-04-21T00:00:00Z');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'leaving', requestedBy: 'test' }] });
  const closing = await eventually(async () => (await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'closing' }).first()) ?? false, 'the closing invoice', { timeoutMs: 20_000 }).catch(() => null);
  expect(await invoiceLines(row.id)).toEqual([
    ['period', 'flat_fee', '30.00'],
    ['closing', 'proration', '-10.00'],
  ]);
  // The credit is netted with what the unpaid period invoice owes, not refunded from a payment that never came.
  const period = (await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'period' }).first())!;
  const linked = await eventually(async () => (await db('invoices').where({ id: closing!.id }).first('credited_invoice_id'))?.credited_invoice_id ?? false, 'the credit taken off');
  expect(linked).toBe(period.id);
  await handle.terminate('test done');
});
