/**
 * Seats are prorated over the billing period: each seat bills for the share of the period it existed. A
 * cancellation now ends the service (and the usage stretch) early; its closing invoice prorated the seats over
 * that short stretch as if it were the whole period: 3 seats for the first 10 days of a 30-day September billed as
 * 3 whole seats (30.00) instead of 1 (10.00). API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

test('a cancellation now bills the seats for the part of the period they existed', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'seats', name: 'Seats', event_type: 'seats.set', aggregation: 'prorated_latest', property: 'count' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'seats-basic',
    name: 'Seats',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'seats', price: { model: 'per_unit', unitPrice: '10.00' } }],
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'initech', name: 'Initech', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'seats-basic', start_at: '2034-09-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;

  // September (30 days): 3 seats from Sep 1. Sep 11 (a third gone): canceled now -> 3 × 10/30 = 1 seat -> 10.00.
  await stack.skipTo('2034-09-05T00:00:00Z');
  const seats = { id: 'seats-1', customer: 'initech', type: 'seats.set', timestamp: '2034-09-01T00:00:00Z', properties: { count: 3 } };
  expect((await stack.api.call('POST', '/v1/events', seats)).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2034-09-11T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'now', reason: 'leaving' })).json).toMatchObject({ status: 'canceled' });
  await stack.skipTo('2034-09-11T02:00:00Z');

  const closing = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'closing' }).first(), 'the closing invoice');
  const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: closing.id, kind: 'usage' });
  expect(lines.map((line) => [Number(line.quantity).toFixed(4), Number(line.amount).toFixed(2)])).toEqual([['1.0000', '10.00']]);
});
