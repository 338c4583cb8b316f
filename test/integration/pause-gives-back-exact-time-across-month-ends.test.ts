/**
 * A pause gives the paused time back: the period's end moves later by exactly the time paused (README: "no fees
 * while paused ... the billing anchor moves by the paused time"). Moved as an instant, the monthly anchor lands on
 * another day of the month, and the period is then placed from it with month-end clamping: its end moved by more
 * or less than the time paused, so the next fee came days early (paid days billed again) or days late (free days).
 *
 * Known, left `test.failing`: the fix is a calendar decision. Adding the paused time after the calendar arithmetic
 * (an offset on every boundary) moves this period's end exactly, but every later boundary keeps the original months'
 * lengths shifted (Mar 3, then Mar 31, May 1: the billing day drifts); restarting the calendar at the moved end
 * (monthly from Mar 3) keeps a fixed billing day but changes what periods a subscription has after a pause. Turn
 * these into `test` with whichever is chosen (workflows/subscription/transitions.ts moveCalendarBy, behind a patch).
 *
 * Time-skipping server and a real Postgres; each case in its own year.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { pauseSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, TASK_QUEUE } from '../../workflows/definitions';
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

/** The start of each period invoiced (the first one's fee in advance, the next one opening where the moved period ended). */
async function pausedOnce(code: string, startAt: string, pausedAt: string, until: string, checkAt: string): Promise<string[]> {
  const plan = await insertPlan(db, { code, billing_interval: 'P1M', flat_fee: '31.00' });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date(startAt));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo(pausedAt);
  await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ until, requestedBy: 'test' }] });
  await stack.advanceTo(checkAt);
  await handle.terminate('test done');
  const invoices = await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'period' }).orderBy('period_start');
  // To the minute: the resume lands a few ms after the pause's end.
  return invoices.map((invoice) => invoice.period_start.toISOString().slice(0, 16));
}

test.failing('30 days paused in a 31-day period: the period ends 30 days later (Mar 3), not on Feb 28 (3 paid days billed again)', async () => {
  // 2033-01-01 .. 02-01 paid (31.00). Paused 01-10 .. 02-09 (30 days): the period ends 02-01 + 30 d = 03-03.
  const periods = await pausedOnce('pause-jan-2033', '2033-01-01T00:00:00Z', '2033-01-10T00:00:00Z', '2033-02-09T00:00:00Z', '2033-03-04T00:00:00Z');
  expect(periods.slice(0, 2)).toEqual(['2033-01-01T00:00', '2033-03-03T00:00']);
});

test.failing('29 days paused in February from a Jan 31 anchor: the period ends 29 days later (Mar 29), not on Apr 1 (3 free days)', async () => {
  // 2034-01-31 .. 02-28 paid. Paused 02-10 .. 03-11 (29 days): the period ends 02-28 + 29 d = 03-29.
  const periods = await pausedOnce('pause-feb-2034', '2034-01-31T00:00:00Z', '2034-02-10T00:00:00Z', '2034-03-11T00:00:00Z', '2034-04-02T00:00:00Z');
  expect(periods.slice(0, 2)).toEqual(['2034-01-31T00:00', '2034-03-29T00:00']);
});
