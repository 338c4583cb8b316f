/**
 * A seat removal that arrives before the addition it removes leaves the stored level below 0 until the missing
 * change comes (docs/pricing.md: the close then stops as seat_level_negative). Meanwhile the usage preview answered
 * 500 internal_error: the proration's refusal reached the API unmapped. It should be a 409 problem with a stable code.
 */
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

test('the usage preview with a seat level below 0 answers a 409 problem, not a 500', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'seats', name: 'Seats', event_type: 'seat.changed', aggregation: 'prorated_sum', property: 'delta' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'seats',
    name: 'Seats',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metric_code: 'seats', price: { model: 'per_unit', unitPrice: '10.00' } }],
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'hooli', name: 'Hooli', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'seats', start_at: '2032-03-01T00:00:00Z' });
  await stack.skipTo('2032-03-05T00:00:00Z');
  await eventually(async () => (await stack.db('subscriptions').where({ id: subscription.json.id }).first())?.current_period_start, 'the first period to open');
  const removal = { id: 'seat-out', customer: 'hooli', type: 'seat.changed', timestamp: '2032-03-04T00:00:00Z', properties: { delta: -1 } };
  expect((await stack.api.call('POST', '/v1/events', { events: [removal] })).json).toMatchObject({ accepted: 1 });

  const preview = await stack.api.call('GET', `/v1/subscriptions/${subscription.json.id}/usage`);
  expect({ status: preview.status, code: preview.json.code }).toEqual({ status: 409, code: 'seat_level_negative' });
});
