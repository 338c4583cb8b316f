/**
 * A plan change at period end to a plan with a shorter usage grace window: the closed period's usage is rated under
 * the plan it had, and it must be closed after THAT plan's grace window, the one its customer was promised. Closed
 * after the new plan's window, an event of the closed period arriving inside the old plan's window is left out of
 * the period invoice (late usage, billed only by a manual re-rating).
 *
 * Timeline (time-skipping server, real Postgres):
 *   2032-01-01  monthly 10.00, tokens at 0.01, grace PT1H          INV [2032-01-01, 2032-02-01) 10.00
 *   2032-01-15  change at period end to monthly 20.00, tokens 0.02, grace PT5M
 *   2032-02-01 00:10  an event stamped 2032-01-31 23:00 arrives (100 tokens; inside the old plan's 1-hour window)
 *   2032-02-01 01:00  the old plan's window ends: INV [2032-02-01, 2032-03-01) 20.00 + 1.00 usage = 21.00
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { planScheduleTerms } from '../../domain/plan-terms';
import type { Charge } from '../../domain/rating';
import type { Database } from '../../store/database';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { insertUsageEvents } from '../../store/usage';
import { changePlanUpdate, SUBSCRIPTION_WORKFLOW_TYPE, TASK_QUEUE } from '../../workflows/definitions';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
  await db('billable_metrics').insert({ code: 'tokens', name: 'Tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens' });
});

afterAll(async () => stack?.stop());

const tokenCharge = (unitPrice: string): Charge[] => [{ metricCode: 'tokens', price: { model: 'per_unit', unitPrice } }];

test("the closed period's usage waits out the grace window of the plan it was rated under, not the next plan's", async () => {
  const hourly = await insertPlan(db, { code: 'grace-hour', billing_interval: 'P1M', flat_fee: '10.00', settings: { usageGracePeriod: 'PT1H' }, charges: tokenCharge('0.01') as unknown[] });
  const brisk = await insertPlan(db, { code: 'grace-5min', billing_interval: 'P1M', flat_fee: '20.00', settings: { usageGracePeriod: 'PT5M' }, charges: tokenCharge('0.02') as unknown[] });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, hourly, new Date('2032-01-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo('2032-01-15T00:00:00Z');
  await handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(brisk), effective: 'period_end', requestedBy: 'test' }] });

  await stack.advanceTo('2032-01-31T23:30:00Z');
  await stack.advanceTo('2032-02-01T00:10:00Z', 60_000);
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'late-but-timely', eventType: 'llm.request', occurredAt: new Date('2032-01-31T23:00:00Z'), properties: { tokens: 100 } }]);
  await stack.advanceTo('2032-02-01T02:00:00Z', 60_000);

  const february = await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'period', period_start: new Date('2032-02-01T00:00:00Z') }).first();
  const lines = (await db<InvoiceLineRow>('invoice_lines').where({ invoice_id: february!.id }).orderBy('position')).map((line) => [line.kind, Number(line.amount).toFixed(2)]);
  expect({ total: Number(february!.total).toFixed(2), lines }).toEqual({ total: '21.00', lines: [['flat_fee', '20.00'], ['usage', '1.00']] });
  // Billed on the period invoice, not left as late usage.
  expect(await db('usage_events').where({ customer_id: customer.id }).whereNull('period_close_id')).toHaveLength(0);
  await handle.terminate('test done');
});
