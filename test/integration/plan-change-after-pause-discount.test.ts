/**
 * A credit for the old plan's unused time on an immediate change, in a period a pause moved on (a resume gives the
 * paused time back: the period's start and end move later) and whose fee a retention discount lowered: the customer
 * paid the discounted fee, and the credit is a share of that. Time-skipping server and a real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { planScheduleTerms } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { answerRetentionOfferUpdate, cancelSubscriptionUpdate, changePlanUpdate, pauseSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, TASK_QUEUE } from '../../workflows/definitions';
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

const settings = { retentionOffer: { percentOff: '30', periods: 3, expiresAfter: 'P7D' } };

const linesOf = async (invoice: InvoiceRow | undefined) =>
  (await db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice!.id }).orderBy('position')).map((line) => [line.kind, Number(line.amount).toFixed(2)]);

test('after a pause, an immediate change credits the unused share of the discounted fee', async () => {
  const plan = await insertPlan(db, { code: 'paused-basic', billing_interval: 'P1M', flat_fee: '100.00', settings });
  const pro = await insertPlan(db, { code: 'paused-pro', billing_interval: 'P1M', flat_fee: '200.00', settings });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2031-01-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo('2031-01-10T00:00:00Z');
  expect(await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'too expensive', requestedBy: 'test' }] })).toMatchObject({ status: 'retention_offered' });
  await handle.executeUpdate(answerRetentionOfferUpdate, { args: [{ accept: true, requestedBy: 'test' }] });

  // 2031: Mar 1 70.00 (100.00 - 30 %). Paused Mar 5 - Mar 10: March's period moves to Mar 6 - Apr 6 (31 days).
  // Mar 16 00:00 immediate change to 200.00: 21 days left: -70.00 x 21/31 = -47.42, +200.00 x 21/31 = 135.48.
  await stack.advanceTo('2031-03-05T00:00:00Z');
  await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ until: '2031-03-10T00:00:00Z', requestedBy: 'test' }] });
  await stack.advanceTo('2031-03-16T00:00:00Z');
  await handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(pro), effective: 'immediate', requestedBy: 'test' }] });
  const march = await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'period' }).andWhere('period_start', '2031-03-01T00:00:00Z').first();
  const proration = await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'proration' }).first();
  expect({ march: await linesOf(march), proration: await linesOf(proration) }).toEqual({
    march: [['flat_fee', '100.00'], ['discount', '-30.00']],
    proration: [['proration', '-47.42'], ['proration', '135.48']],
  });
  await handle.terminate('test done');
});
