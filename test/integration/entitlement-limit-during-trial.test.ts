/**
 * A plan's hard limit holds through the trial, and the answer counts the trial's calls. The row of a trialing
 * subscription has no stored period (the workflow writes the current period with the first period invoice, at the
 * trial's end), and store/entitlements.ts `hardLimitsOf` takes its windows from the stored period only: through the
 * whole trial no limit held and the answer read no window. HOLDS_LIMITS_SQL lists trialing as "in service", and the
 * status table test (entitlement-limit-every-status) writes a period onto its trialing row that a real one lacks.
 *
 *   P1M, trial P14D, limit 3 calls, grace PT1H
 *   2031: Mar 1 start (trialing) | Mar 3: 5 calls stamped Mar 2
 *   expected: 3 accepted, 2 refused entitlement_limit_reached; the answer: no access, usage 3
 *   before:   5 accepted; the answer: has_access true, usage 0
 *
 * Fixed: with no stored period, the limit's window is the trial's span [start, trial end) (store/entitlements.ts
 * `limitPeriodOf`, the trial's end from the row's `trial_end` or the plan's trial), then the first paid period.
 */
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

test('trialing: the calls are held to the limit and the answer counts them', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'trl_calls', name: 'Calls', event_type: 'trl.call', aggregation: 'count' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'trl',
    name: 'Limited with trial',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '10.00',
    trial_period: 'P14D',
    usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'trl_calls', price: { model: 'per_unit', unitPrice: '1.00' } }],
    features: [{ code: 'calls', kind: 'metered', metric_code: 'trl_calls', limit: '3' }],
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'trl', name: 'trl', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'trl', start_at: '2031-03-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  await stack.skipTo('2031-03-03T00:00:00Z');
  const calls = Array.from({ length: 5 }, (_, n) => ({ id: `trl-${n}`, customer: 'trl', type: 'trl.call', timestamp: '2031-03-02T00:00:00Z', properties: {} }));
  const sent = await stack.api.call('POST', '/v1/events', { events: calls });
  const answer = await stack.api.call('GET', `/v1/customers/${customer.json.id}/entitlements/calls`);
  expect({
    accepted: sent.json.accepted ?? 0,
    refused: [...new Set(((sent.json.errors ?? []) as { code: string }[]).map((error) => error.code))],
    answer: { has_access: answer.json.has_access, usage: answer.json.usage },
  }).toEqual({ accepted: 3, refused: ['entitlement_limit_reached'], answer: { has_access: false, usage: '3' } });
});
