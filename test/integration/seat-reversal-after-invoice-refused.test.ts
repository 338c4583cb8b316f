/**
 * A seat change taken back by a reversal after its period was invoiced. Before, the reversal was accepted: the
 * invoiced period got no credit (a seat is priced on a level over time; reversal credits take events out of counts
 * and sums) and the level that period's close kept for the next ones still counted the change, so every later
 * period went on billing the reversed seat (May billed 20.00 for the one seat left). Such a reversal is now refused
 * as `reversal_not_creditable`, as for the other aggregations a close keeps a level of; the seat is removed by a
 * change, which bills from when it is made. API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

test('an invoiced seat change cannot be reversed; a removal bills from when it is made', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'seats', name: 'Seats', event_type: 'seat.changed', aggregation: 'prorated_sum', property: 'delta' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'seats',
    name: 'Seats',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    usage_grace_period: 'PT1H',
    dispute_window: 'P60D',
    charges: [{ metric_code: 'seats', display_name: 'Seats', price: { model: 'per_unit', unitPrice: '10.00' } }],
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'hooli', name: 'Hooli', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'seats', start_at: '2033-04-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;

  // April: 2 seats from Apr 1 (a, b) -> May 1 invoice 20.00. May 3: seat b's addition reversed (added by mistake).
  // June 1 invoice: May bills 1 seat (10.00), not 2 (20.00).
  await stack.skipTo('2033-04-02T00:00:00Z');
  const added = await stack.api.call('POST', '/v1/events', {
    events: [
      { id: 'seat-a', customer: 'hooli', type: 'seat.changed', timestamp: '2033-04-01T00:00:00Z', properties: { delta: 1 } },
      { id: 'seat-b', customer: 'hooli', type: 'seat.changed', timestamp: '2033-04-01T00:00:00Z', properties: { delta: 1 } },
    ],
  });
  expect(added.json).toMatchObject({ accepted: 2 });
  await stack.skipTo('2033-05-03T00:00:00Z');
  const may = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', new Date('2033-05-01T00:00:00Z')).first(), "May's invoice");
  expect(Number(may.total).toFixed(2)).toBe('20.00');
  const reversal = { id: 'seat-b-undo', customer: 'hooli', type: 'seat.changed', timestamp: '2033-05-03T00:00:00Z', reverses: 'seat-b', properties: {} };
  const refused = await stack.api.call('POST', '/v1/events', { events: [reversal] });
  expect(refused.json).toMatchObject({ errors: [{ code: 'reversal_not_creditable' }] });
  expect(await stack.db('usage_events').where({ event_id: 'seat-b-undo' }).first()).toBeUndefined();
  // The seat goes as seats go: a removal, from May 16 (May has 31 days: 2 seats for 15 days, 1 for 16).
  await stack.skipTo('2033-05-16T00:00:00Z');
  const removal = { id: 'seat-b-off', customer: 'hooli', type: 'seat.changed', timestamp: '2033-05-16T00:00:00Z', properties: { delta: -1 } };
  expect((await stack.api.call('POST', '/v1/events', { events: [removal] })).json).toMatchObject({ accepted: 1 });

  await stack.skipTo('2033-06-01T02:00:00Z');
  const june = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', new Date('2033-06-01T00:00:00Z')).first(), "June's invoice");
  const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: june.id, kind: 'usage' }).orderBy('position');
  // (2 x 15 + 1 x 16) / 31 = 1.483871 seats at 10.00 = 14.84.
  expect(lines.map((line) => [line.period_start.toISOString().slice(0, 10), Number(line.quantity).toFixed(4), Number(line.amount).toFixed(2)])).toEqual([['2033-05-01', '1.4839', '14.84']]);
  const mayClose = await stack.db('usage_period_closures').where({ subscription_id: subscriptionId, period_start: new Date('2033-05-01T00:00:00Z') }).first();
  expect(mayClose.totals.seats.closingLevel.level).toBe('1');
});
