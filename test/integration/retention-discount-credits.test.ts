/**
 * A credit for unused time in a period whose fee a retention discount lowered: the customer paid the discounted fee,
 * and the credit gives back a share of that, on a cancellation now and on an immediate plan change. Before, both
 * credited a share of the full fee (51.61 instead of 36.13 below: more than was paid). Time-skipping server and a
 * real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { planScheduleTerms } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { answerRetentionOfferUpdate, cancelSubscriptionUpdate, changePlanUpdate, SUBSCRIPTION_WORKFLOW_TYPE, TASK_QUEUE } from '../../workflows/definitions';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
});

afterAll(async () => stack?.stop());

const settings = { creditUnusedOnCancel: true, retentionOffer: { percentOff: '30', periods: 3, expiresAfter: 'P7D' } };

/** A 100.00 monthly subscription whose customer took the 30 % retention offer in January: Feb-Apr billed at 70.00. */
async function retainedCustomer(code: string, year: number) {
  const plan = await insertPlan(db, { code, billing_interval: 'P1M', flat_fee: '100.00', settings });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date(`${year}-01-01T00:00:00Z`));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo(`${year}-01-10T00:00:00Z`);
  expect(await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'too expensive', requestedBy: 'test' }] })).toMatchObject({ status: 'retention_offered' });
  await handle.executeUpdate(answerRetentionOfferUpdate, { args: [{ accept: true, requestedBy: 'test' }] });
  await stack.advanceTo(`${year}-03-16T00:00:00Z`);
  return { subscriptionId: row.id, handle };
}

const linesOf = async (invoice: InvoiceRow) =>
  (await db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id }).orderBy('position')).map((line) => [line.kind, Number(line.amount).toFixed(2)]);
const invoiceOf = (subscriptionId: string, kind: string) => db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind }).orderBy('created_at', 'desc').first();

test('a cancellation now credits the unused share of the discounted fee', async () => {
  // 2036: Mar 1 70.00 (100.00 - 30 %). Mar 16 00:00 cancel now: 16 of March's 31 days unused -> 70.00 x 16/31 = 36.13.
  const { subscriptionId, handle } = await retainedCustomer('retained-cancel', 2036);
  const march = await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2036-03-01T00:00:00Z').first();
  expect(await linesOf(march!)).toEqual([['flat_fee', '100.00'], ['discount', '-30.00']]);
  expect(await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'leaving', requestedBy: 'test' }] })).toMatchObject({ status: 'canceled' });
  await stack.resultOf(handle);
  expect(await linesOf((await invoiceOf(subscriptionId, 'closing'))!)).toEqual([['proration', '-36.13']]);
});

test('an immediate plan change credits the unused share of the discounted fee', async () => {
  // 2037: Mar 1 70.00. Mar 16 00:00 immediate change to 200.00: -70.00 x 16/31 = -36.13, +200.00 x 16/31 = 103.23.
  const { subscriptionId, handle } = await retainedCustomer('retained-change', 2037);
  const pro = await insertPlan(db, { code: 'retained-change-pro', billing_interval: 'P1M', flat_fee: '200.00', settings });
  await handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(pro), effective: 'immediate', requestedBy: 'test' }] });
  expect(await linesOf((await invoiceOf(subscriptionId, 'proration'))!)).toEqual([
    ['proration', '-36.13'],
    ['proration', '103.23'],
  ]);
  await handle.terminate('test done');
});
