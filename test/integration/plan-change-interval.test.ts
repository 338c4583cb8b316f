/**
 * A plan change at period end to a plan with another billing interval (allowed: only an immediate one is refused,
 * `interval_change_needs_period_end`). The new plan's periods start at the boundary where it takes effect and
 * follow its own interval from there: every period billed once, the periods tiling time without gap or overlap.
 *
 * Before, the period where the change took effect was still placed on the old interval, and the ones after it on
 * the new interval counted from the original anchor and period index: yearly -> monthly billed the monthly fee for
 * a whole year, then went back to March of the first year and billed every month again (already paid by the yearly
 * fee); monthly -> yearly billed the yearly fee for one month, then jumped to a period two years on.
 * Time-skipping server and a real Postgres; each test in its own years (server time only moves forward).
 */
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { planScheduleTerms, PlanSettings } from '../../domain/plan-terms';
import type { Charge } from '../../domain/rating';
import type { PlanRow } from '../../store/catalog';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { insertUsageEvents } from '../../store/usage';
import { changePlanUpdate, SUBSCRIPTION_WORKFLOW_TYPE, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
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

const WEEK = 7 * 86_400_000;
const GRACE: PlanSettings = { usageGracePeriod: 'PT1H' };
const tokenCharge = (unitPrice: string): Charge[] => [{ metricCode: 'tokens', price: { model: 'per_unit', unitPrice } }];

async function plan(code: string, interval: string, flatFee: string, charges: Charge[] = []): Promise<PlanRow> {
  return insertPlan(db, { code, name: code, billing_interval: interval, flat_fee: flatFee, settings: GRACE as Record<string, unknown>, charges: charges as unknown[] });
}

async function subscribe(planRow: PlanRow, startAt: string) {
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, planRow, new Date(startAt));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  return { subscriptionId: row.id, customerId: customer.id, handle };
}

/** Every invoice as [kind, period start, period end, total], by period start. */
async function invoicesOf(subscriptionId: string): Promise<string[][]> {
  const rows = await db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy([{ column: 'period_start' }, { column: 'created_at' }]);
  return rows.map((invoice) => [invoice.kind, invoice.period_start.toISOString().slice(0, 10), invoice.period_end.toISOString().slice(0, 10), Number(invoice.total).toFixed(2)]);
}

async function replaysEveryRun(workflowId: string): Promise<void> {
  const bundle = await workflowBundle();
  for (const [index, history] of (await runHistories(env.client, workflowId)).entries()) {
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, `interval-change-run-${index}`);
  }
}

test('yearly -> monthly at period end: the first monthly period starts at the boundary, and no month of the paid year is billed again', async () => {
  // Timeline:
  //   2031-01-01  yearly 120.00 (tokens at 0.01)                        INV [2031-01-01, 2032-01-01) 120.00
  //   2031-06-01  change to monthly 10.00 (tokens at 0.02) at period end -> effective 2032-01-01
  //   2031-12-15  1,000 tokens (yearly prices: 10.00)
  //   2032-01-01  monthly 10.00 + the year's usage 10.00               INV [2032-01-01, 2032-02-01) 20.00
  //   2032-01-15  500 tokens (monthly prices: 10.00)
  //   2032-02-01  10.00 + 10.00                                          INV [2032-02-01, 2032-03-01) 20.00
  //   2032-03-01 .. 2033-01-01  10.00 each month
  const yearly = await plan('yearly-2031', 'P1Y', '120.00', tokenCharge('0.01'));
  const monthly = await plan('monthly-2031', 'P1M', '10.00', tokenCharge('0.02'));
  const { subscriptionId, customerId, handle } = await subscribe(yearly, '2031-01-01T00:00:00Z');
  await stack.advanceTo('2031-06-01T00:00:00Z', WEEK);
  const scheduled = await handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(monthly), effective: 'period_end', requestedBy: 'test' }] });
  expect(scheduled).toMatchObject({ effective: 'period_end', effectiveAt: '2032-01-01T00:00:00.000Z' });
  await stack.advanceTo('2031-12-16T00:00:00Z', WEEK);
  await insertUsageEvents(db, [{ customerId, eventId: 'y1', eventType: 'llm.request', occurredAt: new Date('2031-12-15T00:00:00Z'), properties: { tokens: 1000 } }]);
  await stack.advanceTo('2032-01-16T00:00:00Z', WEEK);
  await insertUsageEvents(db, [{ customerId, eventId: 'm1', eventType: 'llm.request', occurredAt: new Date('2032-01-15T00:00:00Z'), properties: { tokens: 500 } }]);

  await stack.advanceTo('2033-01-02T02:00:00Z', WEEK);
  const months = ['2032-03', '2032-04', '2032-05', '2032-06', '2032-07', '2032-08', '2032-09', '2032-10', '2032-11', '2032-12', '2033-01', '2033-02'];
  expect(await invoicesOf(subscriptionId)).toEqual([
    ['period', '2031-01-01', '2032-01-01', '120.00'],
    ['period', '2032-01-01', '2032-02-01', '20.00'],
    ['period', '2032-02-01', '2032-03-01', '20.00'],
    ...months.slice(0, -1).map((month, index) => ['period', `${month}-01`, `${months[index + 1]}-01`, '10.00']),
  ]);
  // Every event billed once, under the plan in force when it happened.
  expect(await db('usage_events').where({ customer_id: customerId }).whereNull('period_close_id')).toHaveLength(0);
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({
    planCode: 'monthly-2031',
    status: 'active',
    currentPeriod: { start: '2033-01-01T00:00:00.000Z', end: '2033-02-01T00:00:00.000Z' },
  });
  expect((await db('subscriptions').where({ id: subscriptionId }).first()).current_period_end.toISOString()).toBe('2033-02-01T00:00:00.000Z');
  await replaysEveryRun(handle.workflowId);
  await handle.terminate('test done');
});

test('monthly -> yearly at period end: one yearly fee for the year from the boundary, the next one a year later', async () => {
  // Timeline:
  //   2035-01-01  monthly 10.00                                     INV [2035-01-01, 2035-02-01) 10.00
  //   2035-01-15  change to yearly 120.00 at period end -> effective 2035-02-01
  //   2035-02-01  yearly                                            INV [2035-02-01, 2036-02-01) 120.00
  //   2036-02-01  renewal                                           INV [2036-02-01, 2037-02-01) 120.00
  const monthly = await plan('monthly-2035', 'P1M', '10.00');
  const yearly = await plan('yearly-2035', 'P1Y', '120.00');
  const { subscriptionId, handle } = await subscribe(monthly, '2035-01-01T00:00:00Z');
  await stack.advanceTo('2035-01-15T00:00:00Z', WEEK);
  await handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(yearly), effective: 'period_end', requestedBy: 'test' }] });

  await stack.advanceTo('2036-02-02T00:00:00Z', WEEK);
  expect(await invoicesOf(subscriptionId)).toEqual([
    ['period', '2035-01-01', '2035-02-01', '10.00'],
    ['period', '2035-02-01', '2036-02-01', '120.00'],
    ['period', '2036-02-01', '2037-02-01', '120.00'],
  ]);
  expect(await handle.query(subscriptionStateQuery)).toMatchObject({
    planCode: 'yearly-2035',
    currentPeriod: { start: '2036-02-01T00:00:00.000Z', end: '2037-02-01T00:00:00.000Z' },
  });
  await replaysEveryRun(handle.workflowId);
  await handle.terminate('test done');
});
