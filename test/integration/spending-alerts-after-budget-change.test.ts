/**
 * A customer who raises their budget mid-period expects the alerts of the new budget (docs: PUT
 * /v1/subscriptions/:id/budget, alert thresholds in percent of the budget). A threshold was recorded once per
 * (subscription, period, basis, threshold) whatever the budget it was a share of, so after a raise from 100.00
 * to 1,000.00 the 50 % alert of the new budget (500.00) never fired: it had fired at 50.00 of the old one.
 * API, workflow, time-skipping server and a real Postgres.
 */
import { usageRecordedSignal } from '../../workflows/definitions';
import { recordSpendingAlert } from '../../store/spending-alerts';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'hooli', type: 'api.calls', timestamp, properties: { n } });

test('after the budget is raised mid-period, its thresholds are raised against the new budget', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', { code: 'budget-raise', name: 'Calls', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '1.00' } }] });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'hooli', name: 'Hooli', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'budget-raise', start_at: '2033-05-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  expect((await stack.api.call('PUT', `/v1/subscriptions/${subscriptionId}/budget`, { amount: '100.00', thresholds: ['50'] })).status).toBe(200);

  const summary = (latestEventAt: string) =>
    stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`).signal(usageRecordedSignal, { eventCount: 1, latestEventAt });
  const alerts = async (): Promise<string[]> =>
    (await stack.db('outbox').where({ aggregate_id: subscriptionId, event_type: 'spending.threshold_reached' }).orderBy('id')).map(
      (row: { payload: { threshold: string; spend: string; limit: string } }) => `${row.payload.threshold}% of ${row.payload.limit} at ${row.payload.spend}`,
    );

  // Timeline (UTC, 2033): May 5 60 calls (1.00 each): 50 % of 100.00. May 6 budget raised to 1,000.00.
  // May 10 500 more calls: 560.00, 50 % of the new budget.
  await stack.skipTo('2033-05-05T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('c1', '2033-05-05T00:00:00Z', 60))).json).toMatchObject({ accepted: 1 });
  await summary('2033-05-05T00:00:00Z');
  await eventually(async () => ((await alerts()).length === 1 ? true : null), 'the first 50 % alert');

  await stack.skipTo('2033-05-06T00:00:00Z');
  expect((await stack.api.call('PUT', `/v1/subscriptions/${subscriptionId}/budget`, { amount: '1000.00', thresholds: ['50'] })).status).toBe(200);
  await stack.skipTo('2033-05-10T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('c2', '2033-05-10T00:00:00Z', 500))).json).toMatchObject({ accepted: 1 });
  await summary('2033-05-10T00:00:00Z');
  await stack.skipTo('2033-05-10T00:10:00Z'); // the check after the second summary has run (or found nothing)
  const state = await stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`).query<{ timeline: Array<{ event: string }> }>('subscriptionState').catch(() => null);
  expect(state).not.toBeNull();
  await eventually(async () => ((await alerts()).length >= 2 ? true : null), 'an alert after the raise', { timeoutMs: 5_000, intervalMs: 50 }).catch(() => undefined);
  expect(await alerts()).toEqual(['50% of 100 at 60.00', '50% of 1000 at 560.00']);
});

/**
 * One threshold spelled two ways ("50" and "50.0", the same number) was two thresholds: the alert row is keyed by the
 * threshold's text, so one crossing raised two alerts. The API stores one spelling per number; a row raised before
 * that (spelled "50.0") still answers for "50".
 */
test('a threshold spelled two ways is one threshold and raises one alert', async () => {
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'initech', name: 'Initech', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'budget-raise', start_at: '2033-06-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  const budget = await stack.api.call('PUT', `/v1/subscriptions/${subscriptionId}/budget`, { amount: '100.00', thresholds: ['50', '50.0', '080.00'] });
  expect(budget.json).toMatchObject({ budget: '100.00', thresholds: ['50', '80'] });

  // June 3: 60 calls at 1.00 = 60.00, 50 % of 100.00 (not 80 %).
  await stack.skipTo('2033-06-03T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { id: 'i1', customer: 'initech', type: 'api.calls', timestamp: '2033-06-03T00:00:00Z', properties: { n: 60 } })).json).toMatchObject({ accepted: 1 });
  await stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`).signal(usageRecordedSignal, { eventCount: 1, latestEventAt: '2033-06-03T00:00:00Z' });
  const alerts = async () => (await stack.db('outbox').where({ aggregate_id: subscriptionId, event_type: 'spending.threshold_reached' })).map((row: { payload: { threshold: string } }) => row.payload.threshold);
  await eventually(async () => ((await alerts()).length > 0 ? true : null), 'the 50 % alert');
  expect(await alerts()).toEqual(['50']); // the alerts of one check commit together

  // A row raised before thresholds were canonical, spelled "80.0": the crossing of "80" is that row.
  const periodStart = new Date('2033-06-01T00:00:00Z');
  await stack.db('spending_alerts').insert({ subscription_id: subscriptionId, period_start: periodStart, basis: 'budget', threshold: '80.0', spend: '85.00', limit_amount: '100' });
  const again = await stack.db.transaction((trx) => recordSpendingAlert(trx, { subscriptionId, periodStart, basis: 'budget', threshold: '80', spend: '90.00', limitAmount: '100' }));
  expect(again).toBeNull();
  expect(await stack.db('spending_alerts').where({ subscription_id: subscriptionId }).orderBy('threshold').pluck('threshold')).toEqual(['50', '80.0']);
});
