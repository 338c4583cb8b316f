/**
 * A change at period end opens the new plan's first period only after the grace window of the plan the closed period
 * is rated under (so usage sent on time under that plan is billed). From a monthly plan with a P7D window to a daily
 * plan, the change was accepted (200) and then:
 *
 *   2035-01-01  monthly 30.00 (calls 0.10, grace P7D)        INV [Jan 1, Feb 1) 30.00
 *   2035-01-10  change at period end to daily 1.00 (calls 0.10, grace PT1H): 200
 *   2035-01-20  5 calls (0.50)
 *   2035-02-01  the daily plan's first period [Feb 1, Feb 2) should bill 1.00 + 0.50 = 1.50 in advance, but
 *               waits for the monthly plan's window: on Feb 3 no invoice, a pause refused with 409 period_opening
 *   2035-02-08  8 daily invoices at once (1.50, then 1.00 x 7), the first a week late
 *
 * The rule a plan is published under (the grace window is shorter than the billing interval, docs/pricing.md
 * "Validation") now holds for the window the new plan's first period waits for: such a change is refused with 422
 * validation_failed and nothing is written; a change to an interval longer than the window is taken as before.
 */
import { subscriptionStateQuery } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

test("a change at period end to an interval not longer than the current plan's grace window is refused, nothing written", async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.call', aggregation: 'count' })).status).toBe(201);
  const charges = [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '0.10' } }];
  const plan = (code: string, billingInterval: string, fee: string, grace: string) =>
    stack.api.call('POST', '/v1/plans', { code, name: code, currency: 'USD', billing_interval: billingInterval, flat_fee: fee, usage_grace_period: grace, charges });
  expect((await plan('monthly', 'P1M', '30.00', 'P7D')).status).toBe(201);
  expect((await plan('daily', 'P1D', '1.00', 'PT1H')).status).toBe(201);
  expect((await plan('eight-days', 'P8D', '8.00', 'PT1H')).status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'acme', name: 'Acme', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'monthly', start_at: '2035-01-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  const id: string = subscription.json.id;
  await stack.skipTo('2035-01-10T00:00:00Z');

  const daily = await stack.api.call('POST', `/v1/subscriptions/${id}/plan-change`, { plan_code: 'daily', effective: 'period_end' });
  const row = await stack.db('subscriptions').where({ id }).first('scheduled_change_plan_id');
  const state = await stack.env.client.workflow.getHandle(`subscription:${id}`).query(subscriptionStateQuery);
  // Before: 200 {effective: period_end, effective_at: 2035-02-01}, and the daily fees of Feb 1-8 billed together on Feb 8.
  expect({ status: daily.status, type: daily.type.split(';')[0], code: daily.json.code, path: daily.json.errors?.[0]?.path, recorded: row.scheduled_change_plan_id, scheduled: state.scheduledChange }).toEqual({
    status: 422,
    type: 'application/problem+json',
    code: 'validation_failed',
    path: 'plan_code',
    recorded: null,
    scheduled: null,
  });

  // Every 8 days is longer than 7: the first period opens as the window ends, before its own end.
  const eightDays = await stack.api.call('POST', `/v1/subscriptions/${id}/plan-change`, { plan_code: 'eight-days', effective: 'period_end' });
  expect([eightDays.status, eightDays.json.effective_at]).toEqual([200, '2035-02-01T00:00:00.000Z']);

  await stack.env.client.workflow.getHandle(`subscription:${id}`).terminate('test done');
});
