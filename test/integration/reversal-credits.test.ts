/**
 * Reversals of invoiced outcomes across period boundaries (issue 14, point 3) through the real API, workflow and
 * Postgres on a time-skipping server: a credit line on the next period's invoice, a refusal after the window or
 * where no credit can be expressed, and a credit note (exactly once) when the subscription has ended.
 */
import { randomUUID } from 'node:crypto';
import { JANITOR_SCHEDULE_ID, ReconciliationReport } from '../../contract/janitor';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { marginReport } from '../../store/margins';
import { creditReversalsOfEndedSubscriptions } from '../../store/reversal-credit-notes';
import { insertReversalEvents } from '../../store/reversals';
import { cancelSubscriptionUpdate, TASK_QUEUE } from '../../workflows/definitions';
import { reconciliationWorkflow } from '../../workflows/janitor';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

const skipTo = (instant: string): Promise<void> => stack.skipTo(instant);
const deal = (id: string, timestamp: string, value: string) => ({ id, customer: 'acme', type: 'deal.closed', timestamp, properties: { value } });
const reversal = (id: string, timestamp: string, reverses: string, type = 'deal.closed') => ({ id, customer: 'acme', type, timestamp, reverses, properties: {} });
const lineView = (line: InvoiceLineRow) => [line.description, line.amount, line.period_start.toISOString().slice(0, 10)];

test('a reversal in the next period credits the period invoice; after the window or under a max metric it is refused; after the end it is a credit note, once', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'closed_deals', name: 'Closed deals', event_type: 'deal.closed', aggregation: 'count', property: 'value' })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'peak_gpus', name: 'Peak GPUs', event_type: 'gpu.peak', aggregation: 'max', property: 'gpus' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'outcomes', name: 'Outcomes', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', dispute_window: 'P14D',
    charges: [
      { metric_code: 'closed_deals', display_name: 'Closed deals', price: { model: 'percentage', rate: '0.02', minFee: '5.00', maxFee: '50.00' } },
      { metric_code: 'peak_gpus', display_name: 'Peak GPUs', price: { model: 'per_unit', unitPrice: '1.00' } },
    ],
  });
  expect(plan.status).toBe(201);
  const acme = await stack.api.call('POST', '/v1/customers', { external_id: 'acme', name: 'Acme', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: acme.json.id, plan_code: 'outcomes', start_at: '2032-03-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  const handle = stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`);

  // Timeline (UTC, 2032), 2 % of each deal (min 5.00, max 50.00), reversals accepted for 14 days after the deal:
  //   Mar 25     d1 1,000.00 -> 20.00   d2 100.00 -> 5.00 (min)   d3 5,000.00 -> 50.00 (max)   GPU peak 3
  //   Apr 1      INV (March) 75.00 + 3.00 = 78.00, paid
  //   Apr 2      r3 reverses d3: accepted (window until Apr 8); rg reverses the GPU peak: reversal_not_creditable
  //   Apr 10     r1 reverses d1: dispute_window_closed (its window closed on Apr 8)
  //   Apr 20     d4 2,000.00 -> 40.00   d5 1,500.00 -> 30.00
  //   May 1      INV (April) 70.00 + 0.00 GPUs − 50.00 (d3 reversed, its capped fee, dated March) = 20.00
  //   May 28     d6 1,000.00 -> 20.00; canceled at period end
  //   Jun 1      closing INV 20.00, paid; the subscription has ended
  //   Jun 2      r6 reverses d6: no invoice will come, so a credit note of 20.00 against the closing invoice, refunded
  await skipTo('2032-03-26T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { events: [deal('d1', '2032-03-25T00:00:00Z', '1000.00'), deal('d2', '2032-03-25T00:00:00Z', '100.00'), deal('d3', '2032-03-25T00:00:00Z', '5000.00'), { id: 'g1', customer: 'acme', type: 'gpu.peak', timestamp: '2032-03-25T00:00:00Z', properties: { gpus: 3 } }] })).json).toMatchObject({ accepted: 4 });

  await skipTo('2032-04-02T00:00:00Z');
  const march = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2032-04-01T00:00:00Z').first();
  expect([march!.total, march!.status]).toEqual(['78.000000000000', 'paid']);
  const april2 = await stack.api.call('POST', '/v1/events', { events: [reversal('r3', '2032-04-02T00:00:00Z', 'd3'), reversal('rg', '2032-04-02T00:00:00Z', 'g1', 'gpu.peak')] });
  expect(april2.json).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 1, code: 'reversal_not_creditable' }] });
  await skipTo('2032-04-10T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', reversal('r1', '2032-04-10T00:00:00Z', 'd1'))).json.errors).toEqual([expect.objectContaining({ code: 'dispute_window_closed' })]);
  await skipTo('2032-04-21T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { events: [deal('d4', '2032-04-20T00:00:00Z', '2000.00'), deal('d5', '2032-04-20T00:00:00Z', '1500.00')] })).json.accepted).toBe(2);

  await skipTo('2032-05-02T00:00:00Z');
  const april = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2032-05-01T00:00:00Z').first();
  const aprilLines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: april!.id }).orderBy('position');
  expect(aprilLines.map(lineView)).toEqual([
    ['Closed deals', '70.000000000000', '2032-04-01'],
    ['Peak GPUs', '0.000000000000', '2032-04-01'],
    ['Closed deals (reversed outcomes)', '-50.000000000000', '2032-03-01'],
  ]);
  expect(april!.total).toBe('20.000000000000');

  await skipTo('2032-05-29T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', deal('d6', '2032-05-28T00:00:00Z', '1000.00'))).json.accepted).toBe(1);
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'test', requestedBy: 'test' }] });
  await handle.result();
  const closing = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'closing' }).first();
  expect([closing!.total, closing!.status]).toEqual(['20.000000000000', 'paid']);
  expect((await stack.db('subscriptions').where({ id: subscriptionId }).first()).status).toBe('canceled');

  await skipTo('2032-06-02T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', reversal('r6', '2032-06-02T00:00:00Z', 'd6'))).json).toMatchObject({ accepted: 1 });
  // Exactly once: the same reversal resent is a duplicate, another one of d6 is refused (the original is reversed
  // already); neither issues a second note.
  expect((await stack.api.call('POST', '/v1/events', reversal('r6', '2032-06-02T00:00:00Z', 'd6'))).json).toMatchObject({ accepted: 0, duplicates: 1, rejected: 0 });
  expect((await stack.api.call('POST', '/v1/events', reversal('r6b', '2032-06-02T00:00:00Z', 'd6'))).json.errors).toEqual([expect.objectContaining({ code: 'event_already_reversed' })]);

  // A later pass (another request of the customer's) finds every reversal credited: nothing more is issued.
  expect(await creditReversalsOfEndedSubscriptions(stack.db, [acme.json.id])).toEqual([]);

  const notes = await stack.db<InvoiceRow & { credited_invoice_id: string; reason: string }>('invoices').where({ kind: 'credit_note', subscription_id: subscriptionId });
  expect(notes.map((note) => [note.credited_invoice_id, note.total, note.status, note.number?.startsWith('CN')])).toEqual([[closing!.id, '20.000000000000', 'paid', true]]);
  const noteLines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: notes[0].id });
  expect(noteLines.map(lineView)).toEqual([['Closed deals (reversed outcomes)', '20.000000000000', '2032-05-01']]);
  expect(await stack.db('refunds').where({ credit_note_id: notes[0].id }).select('status', 'amount')).toEqual([{ status: 'succeeded', amount: '20.000000000000' }]);
  expect(await stack.db('usage_events').where({ event_id: 'r6' }).select('reversal_credited_on')).toEqual([{ reversal_credited_on: expect.stringMatching(/^credit_note:reversal:/) }]);

  // Margins count the credit in the period of the outcome: May's 20.00 billed, 20.00 credited.
  const may = await marginReport(stack.db, { from: new Date('2032-05-01T00:00:00Z'), to: new Date('2032-06-01T00:00:00Z'), subscriptionIds: [subscriptionId] });
  expect(may.subscriptions[0].revenue).toBe('0.00');
});

test('a reversal stored without its credit note (the API died before issuing it) is credited by the janitor, once', async () => {
  // The previous test left the server clock in June 2032; this customer's one-month subscription ends July 1.
  const beta = await stack.api.call('POST', '/v1/customers', { external_id: 'beta', name: 'Beta', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: beta.json.id, plan_code: 'outcomes', start_at: '2032-06-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  const handle = stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`);
  await skipTo('2032-06-26T00:00:00Z');
  // 2 % of 2,500.00 = 50.00 (the maximum fee), billed by the closing invoice of July 1.
  expect((await stack.api.call('POST', '/v1/events', { id: 'b1', customer: 'beta', type: 'deal.closed', timestamp: '2032-06-25T00:00:00Z', properties: { value: '2500.00' } })).json.accepted).toBe(1);
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'test', requestedBy: 'test' }] });
  await handle.result();
  const closing = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'closing' }).first();
  expect([closing!.total, closing!.status]).toEqual(['50.000000000000', 'paid']);

  // The reversal is stored as ingestion stores it, and the process dies before the credit-note pass.
  await skipTo('2032-07-02T00:00:00Z');
  await insertReversalEvents(stack.db, [{ customerId: beta.json.id, eventId: 'rb1', eventType: 'deal.closed', occurredAt: new Date('2032-07-02T00:00:00Z'), properties: {}, reversesEventId: 'b1' }]);
  const notes = () => stack.db<InvoiceRow>('invoices').where({ kind: 'credit_note', subscription_id: subscriptionId }).select('total', 'status');
  expect(await notes()).toEqual([]);

  const first = await runJanitor();
  expect(first.scanned.owedReversalCredits).toBe(1);
  const findings = await stack.db('reconciliation_findings').where({ subject_id: subscriptionId }).select('kind', 'resolved_at', 'detail');
  expect(findings).toEqual([{ kind: 'reversal_credit_owed', resolved_at: expect.any(Date), detail: expect.stringMatching(/issued credit note CN.* of 50\.000000000000 USD \(refund: succeeded\)/) }]);
  expect(await notes()).toEqual([{ total: '50.000000000000', status: 'paid' }]);
  expect(await stack.db('refunds').join('invoices', 'invoices.id', 'refunds.credit_note_id').where('invoices.subscription_id', subscriptionId).select('refunds.status', 'refunds.amount')).toEqual([{ status: 'succeeded', amount: '50.000000000000' }]);

  // A second run finds nothing owed and issues nothing.
  const second = await runJanitor();
  expect(second.scanned.owedReversalCredits).toBe(0);
  expect(await notes()).toHaveLength(1);
});

/** One janitor run on the stack's worker, acting at once on anything owed. */
async function runJanitor(): Promise<ReconciliationReport> {
  const handle = await stack.env.client.workflow.start(reconciliationWorkflow, {
    taskQueue: TASK_QUEUE,
    workflowId: `${JANITOR_SCHEDULE_ID}-test-${randomUUID()}`,
    args: [{ margins: { reversalCreditMs: 0 } }],
  });
  return handle.result();
}
