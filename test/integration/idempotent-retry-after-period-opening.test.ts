/**
 * A request refused because the period is being opened (409 period_opening: the grace window after a boundary, up to
 * the plan's usage_grace_period) says "later": it answers with Retry-After, and its Idempotency-Key is given back, so
 * the same request with the same key is carried out once the period is open. Before, the refusal was stored under
 * the key and replayed to every retry for 24 hours: the pause the customer asked for could never be made with it.
 * API, workflow, time-skipping server and a real Postgres.
 */
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

test('a pause refused with period_opening is made by its retry with the same Idempotency-Key once the period is open', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'count' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'graceful', name: 'Graceful', currency: 'USD', billing_interval: 'P1M', flat_fee: '5.00', usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '0.01' } }],
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'wonka', name: 'Wonka', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'graceful', start_at: '2034-01-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;

  // Feb 1 00:00:02: February is being opened (its invoice waits for January's usage until 01:00).
  await stack.skipTo('2034-01-31T00:00:00Z');
  await stack.skipTo('2034-02-01T00:00:02Z');
  const key = { 'Idempotency-Key': 'wonka-pause' };
  const refused = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/pause`, {}, key);
  expect([refused.status, refused.json.code]).toEqual([409, 'period_opening']);
  expect(refused.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);

  await stack.skipTo('2034-02-01T01:00:10Z');
  const retried = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/pause`, {}, key);
  expect([retried.status, retried.json.status, retried.headers.get('idempotent-replayed')]).toEqual([200, 'paused', null]);
  // Now final: the same request again is a replay of the pause.
  const replayed = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/pause`, {}, key);
  expect([replayed.status, replayed.json.status, replayed.headers.get('idempotent-replayed')]).toEqual([200, 'paused', 'true']);
});
