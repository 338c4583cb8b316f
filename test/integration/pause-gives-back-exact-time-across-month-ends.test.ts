/**
 * A pause gives the paused time back: the period's end moves later by exactly the time paused, and the calendar
 * restarts at that moved end (README, docs/api.md "Pause and resume"). Before, the monthly anchor moved by the paused
 * time as an instant, landed on another day of the month, and the period was placed from it with month-end clamping:
 * its end moved by more or less than the time paused, so the next fee came days early (paid days billed again) or
 * days late (free days).
 *
 *   2033-01-01 ........ 01-10 ==== paused 30 d ==== 02-09 ........ 03-03 | 04-03 | 05-03
 *   period 0 (31.00, paid for 31 days of service)                  ^ moved end = new anchor, monthly from its day
 *
 * Time-skipping server and a real Postgres; each case in its own year.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Database } from '../../store/database';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { planScheduleTerms } from '../../domain/plan-terms';
import type { SubscriptionRow } from '../../store/subscriptions';
import { changePlanUpdate, pauseSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, TASK_QUEUE } from '../../workflows/definitions';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { recordHistory } from '../support/histories';
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

test('30 days paused in a 31-day period: the period ends 30 days later (Mar 3), not on Feb 28 (3 paid days billed again)', async () => {
  // 2033-01-01 .. 02-01 paid (31.00). Paused 01-10 .. 02-09 (30 days): the period ends 02-01 + 30 d = 03-03.
  const periods = await pausedOnce('pause-jan-2033', '2033-01-01T00:00:00Z', '2033-01-10T00:00:00Z', '2033-02-09T00:00:00Z', '2033-03-04T00:00:00Z');
  expect(periods.slice(0, 2)).toEqual(['2033-01-01T00:00', '2033-03-03T00:00']);
});

test('29 days paused in February from a Jan 31 anchor: the period ends 29 days later (Mar 29), not on Apr 1 (3 free days)', async () => {
  // 2034-01-31 .. 02-28 paid. Paused 02-10 .. 03-11 (29 days): the period ends 02-28 + 29 d = 03-29.
  const periods = await pausedOnce('pause-feb-2034', '2034-01-31T00:00:00Z', '2034-02-10T00:00:00Z', '2034-03-11T00:00:00Z', '2034-04-02T00:00:00Z');
  expect(periods.slice(0, 2)).toEqual(['2034-01-31T00:00', '2034-03-29T00:00']);
});

/** Each period invoice: its fee period (to the minute) and total. */
async function periodInvoices(subscriptionId: string): Promise<string[]> {
  const invoices = await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).orderBy('period_start');
  return invoices.map((invoice) => `${invoice.period_start.toISOString().slice(0, 16)} .. ${invoice.period_end.toISOString().slice(0, 16)}: ${Number(invoice.total).toFixed(2)}`);
}

test('after the moved end the calendar restarts there: Mar 3, Apr 3, May 3, each invoice the whole 31.00; the row shows the moved end', async () => {
  // 2035-01-01 .. 02-01 paid. Paused 01-10 .. 02-09 (30 days): the period ends 03-03, then monthly from the 3rd.
  const plan = await insertPlan(db, { code: 'pause-restart-2035', billing_interval: 'P1M', flat_fee: '31.00' });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2035-01-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo('2035-01-10T00:00:00Z');
  await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ until: '2035-02-09T00:00:00Z', requestedBy: 'test' }] });
  await stack.advanceTo('2035-02-20T00:00:00Z');
  // Ingestion, the usage view and the janitor judge the period by the row: it shows the end the workflow bills to.
  const shown = await db<SubscriptionRow>('subscriptions').where({ id: row.id }).first();
  expect(shown!.current_period_end!.toISOString().slice(0, 16)).toBe('2035-03-03T00:00');
  await stack.advanceTo('2035-05-04T00:00:00Z');
  await handle.terminate('test done');
  // The moved period keeps the 31 days paid for (its start moved with its end); the fee is never billed twice.
  expect(await periodInvoices(row.id)).toEqual([
    '2035-01-01T00:00 .. 2035-02-01T00:00: 31.00',
    '2035-03-03T00:00 .. 2035-04-03T00:00: 31.00',
    '2035-04-03T00:00 .. 2035-05-03T00:00: 31.00',
    '2035-05-03T00:00 .. 2035-06-03T00:00: 31.00',
  ]);
});

test('a 6-hour pause that carries the anchor past midnight at a month end: the period ends 6 hours later, not 18 hours earlier', async () => {
  // 2037-01-30 20:00 .. 02-28 20:00 (clamped from the 30th). Paused 02-10 00:00 .. 06:00: the period ends 03-01 02:00,
  // then monthly from there (04-01 02:00). Moved as an instant, the anchor became 01-31 02:00: the period ended on
  // 02-28 02:00, 18 hours before its end before the pause (18 paid hours billed again), and the next on 03-31 02:00.
  const periods = await pausedOnce('pause-hours-2037', '2037-01-30T20:00:00Z', '2037-02-10T00:00:00Z', '2037-02-10T06:00:00Z', '2037-04-02T00:00:00Z');
  expect(periods.slice(0, 3)).toEqual(['2037-01-30T20:00', '2037-03-01T02:00', '2037-04-01T02:00']);
});

test('a second pause in the moved period moves it again, and a plan change after it prorates the 31 days paid for', async () => {
  // 2038-01-01 .. 02-01 paid (31.00). Paused 01-10 .. 02-09 (30 d): 01-31 .. 03-03. Paused 02-20 .. 02-25 (5 d):
  // 02-05 .. 03-08, then monthly from 03-08. Immediate change on 03-01 to 62.00: 7 of the 31 days left:
  // -31.00 x 7/31 = -7.00, +62.00 x 7/31 = 14.00. Placed from the moved anchor (02-05 .. 03-05, 28 days), it was
  // -31.00 x 4/28 = -4.43 and +8.86, and the next fees on 03-05 and 04-05.
  const plan = await insertPlan(db, { code: 'pause-twice-2038', billing_interval: 'P1M', flat_fee: '31.00' });
  const pro = await insertPlan(db, { code: 'pause-twice-pro-2038', billing_interval: 'P1M', flat_fee: '62.00' });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2038-01-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo('2038-01-10T00:00:00Z');
  await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ until: '2038-02-09T00:00:00Z', requestedBy: 'test' }] });
  await stack.advanceTo('2038-02-20T00:00:00Z');
  await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ until: '2038-02-25T00:00:00Z', requestedBy: 'test' }] });
  await stack.advanceTo('2038-03-01T00:00:00Z');
  await handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(pro), effective: 'immediate', requestedBy: 'test' }] });
  // The run with both resumes (the patch taken, then a period already off its calendar), as a replay fixture.
  await recordHistory(handle, 'subscription-pause-restarts-calendar');
  await stack.advanceTo('2038-04-09T00:00:00Z');
  await handle.terminate('test done');
  const proration = await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'proration' }).first();
  const lines = await db<InvoiceLineRow>('invoice_lines').where({ invoice_id: proration!.id }).orderBy('position');
  expect(lines.map((line) => Number(line.amount).toFixed(2))).toEqual(['-7.00', '14.00']);
  expect(await periodInvoices(row.id)).toEqual([
    '2038-01-01T00:00 .. 2038-02-01T00:00: 31.00',
    '2038-03-08T00:00 .. 2038-04-08T00:00: 62.00',
    '2038-04-08T00:00 .. 2038-05-08T00:00: 62.00',
  ]);
});
