/**
 * A plan may price a unit at up to 18 digits and an event may carry a value up to 10^12, so one valid event can rate
 * to more than any money string holds (10^20): 999,999,999,999 calls × 999,999,999,999,999,999 ≈ 10^30. The period
 * invoice stops in needs_attention as documented (docs/pricing.md "Validation"), but the usage preview read for that
 * subscription answered a bare 500 internal_error: rating failed with a TypeError (a 31-digit line is not a decimal
 * string) that nothing maps to a problem. Expected: a 4xx problem+json with a stable code.
 *
 * domain/rating.ts now refuses such a line with RatingError('amount_out_of_range'), and api/problem.ts answers it
 * 409 amount_out_of_range.
 * API, workflow, time-skipping server and a real Postgres.
 */
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

test('a usage preview whose usage rates past what money holds answers a 4xx problem, not a 500', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'dear',
    name: 'Dear',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '999999999999999999' } }],
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'umbrella', name: 'Umbrella', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'dear', start_at: '2034-09-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  await stack.skipTo('2034-09-05T00:00:00Z');
  const stored = await stack.api.call('POST', '/v1/events', { id: 'e1', customer: 'umbrella', type: 'api.calls', timestamp: '2034-09-05T00:00:00Z', properties: { n: 999999999999 } });
  expect(stored.json).toMatchObject({ accepted: 1 });

  const preview = await stack.api.call('GET', `/v1/subscriptions/${subscription.json.id}/usage`);
  // Before: 500 internal_error.
  expect([preview.status >= 400 && preview.status < 500, preview.type.split(';')[0], preview.json.code]).toEqual([true, 'application/problem+json', 'amount_out_of_range']);
});
