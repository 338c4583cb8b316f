/**
 * A customer budget is per billing period (PUT /v1/subscriptions/:id/budget, README): each threshold is raised
 * at most once per period, against what the period has spent. An immediate plan change mid-period starts a new
 * usage stretch; the spending check keyed its alerts and counted its spend from that stretch's start, so after
 * the change the 50 % alert fired a second time in the same period while the 80 % and 100 % ones never fired,
 * though the period had spent 120 of a 100 budget. API, workflow, time-skipping server and a real Postgres.
 */
import { usageRecordedSignal } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'initech', type: 'api.calls', timestamp, properties: { n } });

test('a budget threshold is raised once per billing period across an immediate plan change, against the whole period spend', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  for (const code of ['budget-a', 'budget-b']) {
    const plan = await stack.api.call('POST', '/v1/plans', { code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '0', charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '1.00' } }] });
    expect(plan.status).toBe(201);
  }
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'initech', name: 'Initech', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'budget-a', start_at: '2033-01-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  expect((await stack.api.call('PUT', `/v1/subscriptions/${subscriptionId}/budget`, { amount: '100.00' })).status).toBe(200);

  // The API's coalescer is not running here: the usage summary a flush would send, signalled as it would be.
  const summary = async (latestEventAt: string): Promise<void> => {
    await stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`).signal(usageRecordedSignal, { eventCount: 1, latestEventAt });
  };
  const alerts = async (): Promise<string[]> =>
    (await stack.db('outbox').where({ aggregate_id: subscriptionId, event_type: 'spending.threshold_reached' }).orderBy('id')).map(
      (row: { payload: { threshold: string; spend: string } }) => `${row.payload.threshold}@${row.payload.spend}`,
    );

  // Timeline (UTC, 2033): Jan 5 60 calls on A (1.00 each): 50 % of the 100.00 budget. Jan 10 immediate change to
  // B (same price); the proration invoice bills the 60. Jan 11: 60 more calls: January has spent 120.00.
  await stack.skipTo('2033-01-05T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('c1', '2033-01-05T00:00:00Z', 60))).json).toMatchObject({ accepted: 1 });
  await summary('2033-01-05T00:00:00Z');
  await eventually(async () => ((await alerts()).length === 1 ? true : null), 'the 50 % alert');
  expect(await alerts()).toEqual(['50@60.00']);

  await stack.skipTo('2033-01-10T00:00:00Z');
  const change = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'budget-b', effective: 'immediate' }, { 'Idempotency-Key': 'initech-to-b' });
  expect(change.status).toBe(200);
  await stack.skipTo('2033-01-11T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('c2', '2033-01-11T00:00:00Z', 60))).json).toMatchObject({ accepted: 1 });
  await summary('2033-01-11T00:00:00Z');
  // The check after the second summary raises something (wrongly or rightly) in one transaction.
  await eventually(async () => ((await alerts()).length >= 2 ? true : null), 'the alerts of the second summary');
  expect(await alerts()).toEqual(['50@60.00', '80@120.00', '100@120.00']);
});
