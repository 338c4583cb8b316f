/**
 * An immediate plan change inside the usage grace window of a period whose fee a retention discount lowers: the
 * period's invoice is written only when the grace window ends (fee in advance, less the discount), after the change.
 * The proration invoice's credit for the old plan's unused time must be a share of what that invoice bills (the
 * discounted fee), not of the list price. Time-skipping server and a real Postgres.
 *
 *   2031 Jan 1 basic 100.00 ---- Jan 10 retention accepted (30 % off 3 periods)
 *   Feb 1 00:00 boundary, grace opens (1 h)   00:00:02 change basic -> pro (200.00)
 *   Feb 1 01:00 grace ends: February's invoice: basic 100.00 - 30.00 = 70.00
 *   proration: -70.00 x (28 d - 2 s) / 28 d = -70.00, +200.00 x the same = 200.00 (each rounded from just under)
 *   Before: -100.00, a share of the list price: 30.00 credited that was never paid (here the upgrade bills 30.00 too
 *   little; a downgrade's negative total is refunded with it).
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
  await db('billable_metrics').insert({ code: 'gd_calls', name: 'Calls', event_type: 'gd.call', aggregation: 'count' });
});

afterAll(async () => stack?.stop());

const settings = { usageGracePeriod: 'PT1H', retentionOffer: { percentOff: '30', periods: 3, expiresAfter: 'P7D' } };
const charges = (unitPrice: string) => [{ metricCode: 'gd_calls', price: { model: 'per_unit', unitPrice } }] as never;

const linesOf = async (invoice: InvoiceRow | undefined) =>
  (await db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice!.id }).orderBy('position')).map((line) => [line.kind, Number(line.amount).toFixed(2)]);

test('a change inside the grace window credits the unused share of the discounted fee the period invoice bills', async () => {
  const basic = await insertPlan(db, { code: 'gd-basic', billing_interval: 'P1M', flat_fee: '100.00', charges: charges('0.10'), settings: settings as never });
  const pro = await insertPlan(db, { code: 'gd-pro', billing_interval: 'P1M', flat_fee: '200.00', charges: charges('0.20'), settings: settings as never });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, basic, new Date('2031-01-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo('2031-01-10T00:00:00Z');
  expect(await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'too expensive', requestedBy: 'test' }] })).toMatchObject({ status: 'retention_offered' });
  await handle.executeUpdate(answerRetentionOfferUpdate, { args: [{ accept: true, requestedBy: 'test' }] });

  await stack.advanceTo('2031-02-01T00:00:00Z', 3_600_000);
  await stack.advanceTo('2031-02-01T00:00:02Z', 1_000);
  const current = env.client.workflow.getHandle(handle.workflowId);
  await current.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(pro), effective: 'immediate', requestedBy: 'test' }] });
  await stack.advanceTo('2031-02-01T02:00:00Z', 600_000);

  const february = await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'period' }).andWhere('period_start', '2031-02-01T00:00:00Z').first();
  const proration = await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'proration' }).first();
  expect({ february: await linesOf(february), proration: await linesOf(proration) }).toEqual({
    february: [['flat_fee', '100.00'], ['usage', '0.00'], ['discount', '-30.00']],
    proration: [['proration', '-70.00'], ['proration', '200.00'], ['usage', '0.00']],
  });
  await current.terminate('test done');
});
