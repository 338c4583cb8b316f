/**
 * A plan's usage grace window (how long after a period ends its late events still count) must be shorter than its
 * billing interval. Each period's invoice (its fee in advance, the previous period's usage in arrears) waits out the
 * grace window, and the subscription refuses pauses and plan changes (409 period_opening) while it does: with a
 * window as long as a period, the in-advance fee of February was billed in April and the subscription was "being
 * opened" all the time, so a pause could never be made. Refused at the API (422 validation_failed, path usage_grace_period), nothing
 * stored. API, workflow, time-skipping server and a real Postgres.
 */
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

const plan = (code: string, fields: Record<string, unknown>) => ({
  code, name: code, currency: 'USD', flat_fee: '5.00', charges: [{ metric_code: 'grace_calls', price: { model: 'per_unit', unitPrice: '0.01' } }], ...fields,
});

test.each([
  ['monthly-two-month-grace', { billing_interval: 'P1M', usage_grace_period: 'P2M' }],
  ['monthly-month-grace', { billing_interval: 'P1M', usage_grace_period: 'P1M' }],
  ['monthly-31-day-grace', { billing_interval: 'P1M', usage_grace_period: 'P31D' }],
  ['weekly-week-grace', { billing_interval: 'P1W', usage_grace_period: 'P7D' }],
  ['minutely-default-hour-grace', { billing_interval: 'PT1M' }],
])('a plan %s whose usage grace window is not shorter than its billing interval is refused with 422, nothing stored', async (code, fields) => {
  await stack.api.call('POST', '/v1/metrics', { code: 'grace_calls', name: 'Calls', event_type: 'grace.calls', aggregation: 'count' });
  const refused = await stack.api.call('POST', '/v1/plans', plan(code, fields));
  expect([refused.status, refused.type.split(';')[0], refused.json.code]).toEqual([422, 'application/problem+json', 'validation_failed']);
  expect((await stack.api.call('GET', `/v1/plans/${code}`)).status).toBe(404);
});

test.each([
  ['monthly-27-day-grace', { billing_interval: 'P1M', usage_grace_period: 'P27D' }],
  ['minutely-five-second-grace', { billing_interval: 'PT1M', usage_grace_period: 'PT5S' }],
  // Without usage charges nothing waits for a grace window.
  ['fees-only-minutely', { billing_interval: 'PT1M', charges: [] }],
])('a plan %s whose grace window fits in its period is published', async (code, fields) => {
  await stack.api.call('POST', '/v1/metrics', { code: 'grace_calls', name: 'Calls', event_type: 'grace.calls', aggregation: 'count' });
  expect((await stack.api.call('POST', '/v1/plans', plan(code, fields))).status).toBe(201);
});
