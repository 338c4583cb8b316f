/**
 * A plan's hard cap is per period (past it, ingestion refuses usage until the period's end). After an immediate plan
 * change the spending check measured it from the change only: 40.00 before a change between two 50.00-cap plans and
 * 40.00 after it left the cap unset, although the period had spent 80.00. It now counts the usage the proration
 * invoice billed earlier in the period, as the budget does. API, workflow, time-skipping server and a real Postgres.
 */
import { usageRecordedSignal } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

const calls = (customer: string, id: string, timestamp: string, n: number) => ({ id, customer, type: 'api.calls', timestamp, properties: { n } });

async function cappedPlan(code: string, hardCap: string | null): Promise<void> {
  const plan = await stack.api.call('POST', '/v1/plans', {
    code,
    name: code,
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '1.00' } }],
  });
  expect(plan.status).toBe(201);
  // The API has no field for a hard cap: plans get it in their settings.
  if (hardCap !== null) await stack.db('plans').where({ id: plan.json.id }).update({ settings: JSON.stringify({ ...plan.json.settings, hardCap }) });
}

async function subscribe(externalId: string, planCode: string): Promise<string> {
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: planCode, start_at: '2033-01-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  return subscription.json.id;
}

beforeAll(async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  await cappedPlan('cap-50', '50.00');
  await cappedPlan('cap-50-b', '50.00');
  ids.stark = await subscribe('stark', 'cap-50');
});

const ids: Record<string, string> = {};

test('the cap is per period: after an immediate change the spending check counts the usage billed before it', async () => {
  const id = ids.stark;
  await stack.skipTo('2033-01-05T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('stark', 'stark-1', '2033-01-05T00:00:00Z', 40))).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2033-01-10T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${id}/plan-change`, { plan_code: 'cap-50-b', effective: 'immediate' }, { 'Idempotency-Key': `side-${id}` })).status).toBe(200);
  await stack.skipTo('2033-01-11T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('stark', 'stark-2', '2033-01-11T00:00:00Z', 40))).json).toMatchObject({ accepted: 1 });
  await stack.env.client.workflow.getHandle(`subscription:${id}`).signal(usageRecordedSignal, { eventCount: 1, latestEventAt: '2033-01-11T00:00:00Z' });
  await stack.skipTo('2033-01-12T00:00:00Z');
  // January has spent 80.00 against a 50.00 cap.
  expect((await stack.db('subscriptions').where({ id }).first()).usage_capped_until).toEqual(new Date('2033-02-01T00:00:00Z'));
});
