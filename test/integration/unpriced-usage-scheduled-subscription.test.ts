/**
 * `unmatched: "reject"` refuses usage no price matches "for customers whose live subscription is on the plan"
 * (docs/pricing.md). A subscription scheduled to start later is not live: the customer's usage now belongs to the
 * subscription they are on, whose plan prices it (here by a default price). Before, ingestion judged the event by
 * every subscription not canceled, so the future plan refused today's usage: the event was lost, never billed.
 * Real API, workflow and Postgres on a time-skipping Temporal server.
 */
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const usage = (id: string, timestamp: string, model: string, tokens: number) => ({ id, customer: 'switcher', type: 'sched.usage', timestamp, properties: { model, tokens } });

test('a plan that refuses unpriced usage does not refuse it before its subscription starts', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'sched_tokens', name: 'Tokens', event_type: 'sched.usage', aggregation: 'sum', property: 'tokens', group_by: ['model'] })).status).toBe(201);
  const large = { match: { model: 'large' }, price: { model: 'per_unit', unitPrice: '0.00001' } };
  expect(
    (await stack.api.call('POST', '/v1/plans', {
      code: 'sched-open', name: 'Open', currency: 'USD', billing_interval: 'P1M', flat_fee: '0',
      charges: [{ metric_code: 'sched_tokens', dimensions: { prices: [large], default_price: { model: 'per_unit', unitPrice: '0.00002' } } }],
    })).status,
  ).toBe(201);
  expect(
    (await stack.api.call('POST', '/v1/plans', {
      code: 'sched-strict', name: 'Strict', currency: 'USD', billing_interval: 'P1M', flat_fee: '0',
      charges: [{ metric_code: 'sched_tokens', dimensions: { prices: [large], unmatched: 'reject' } }],
    })).status,
  ).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'switcher', name: 'Switcher', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  // Timeline (2032): on "open" from Mar 1, canceled at its period's end (Apr 1); booked on "strict" from Jun 1
  // (scheduled meanwhile). Both price sched.usage, so "strict" may start only where "open" stops billing usage: one
  // customer's usage of an event type is billed by at most one subscription at a time (docs/api.md).
  const open = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'sched-open', start_at: '2032-03-01T00:00:00Z' });
  expect(open.status).toBe(201);
  await stack.skipTo('2032-03-10T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${open.json.id}/cancel`, { at: 'period_end', reason: 'moving to strict' })).json).toMatchObject({ status: 'pending_cancellation' });
  await eventually(async () => (await stack.db('subscriptions').where({ id: open.json.id, status: 'pending_cancellation' }).first()) ?? undefined, 'the pending cancellation on the row');
  expect((await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'sched-strict', start_at: '2032-06-01T00:00:00Z' })).status).toBe(201);

  // March usage of a model only "open" prices (by its default): it belongs to the live subscription, on "open".
  const march = await stack.api.call('POST', '/v1/events', { events: [usage('m1', '2032-03-09T00:00:00Z', 'small', 1000), usage('m2', '2032-03-09T00:00:00Z', 'large', 1000)] });
  expect(march.json).toMatchObject({ accepted: 2, rejected: 0, errors: [] });
});
