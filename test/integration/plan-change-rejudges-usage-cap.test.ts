/**
 * A plan's hard cap: past it, ingestion refuses the subscription's usage (`usage_cap_reached`) until the period's
 * end (subscriptions.usage_capped_until). The cap is the plan's: an immediate change to a plan with a higher cap (or
 * none) kept refusing the customer's usage for the rest of the period, and the spending check that could have
 * lifted it only runs on usage, which was refused; a change to a plan whose lower cap the period had already
 * passed let usage in. An immediate change now judges the cap again under the new plan.
 * API, workflow, time-skipping server and a real Postgres.
 */
import { usageRecordedSignal } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

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
  await cappedPlan('cap-30', '30.00');
  await cappedPlan('cap-500', '500.00');
  await cappedPlan('no-cap', null);
  ids.umbrella = await subscribe('umbrella', 'cap-50');
  ids.hooli = await subscribe('hooli', 'cap-50');
  ids.globex = await subscribe('globex', 'cap-500');
});

const ids: Record<string, string> = {};

test('capped at 50, an immediate upgrade to a plan with a higher cap (or none) lets the usage in again', async () => {
  const upgraded = ids.umbrella;
  const uncapped = ids.hooli;
  const summary = (subscriptionId: string, latestEventAt: string) =>
    stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`).signal(usageRecordedSignal, { eventCount: 1, latestEventAt });
  const cappedUntil = async (subscriptionId: string): Promise<Date | null> => (await stack.db('subscriptions').where({ id: subscriptionId }).first()).usage_capped_until;

  // Jan 5: 60 calls (60.00) on each, past the 50.00 cap.
  await stack.skipTo('2033-01-05T00:00:00Z');
  for (const [customer, id] of [['umbrella', upgraded], ['hooli', uncapped]]) {
    expect((await stack.api.call('POST', '/v1/events', calls(customer, `${customer}-1`, '2033-01-05T00:00:00Z', 60))).json).toMatchObject({ accepted: 1 });
    await summary(id, '2033-01-05T00:00:00Z');
    await eventually(async () => ((await cappedUntil(id)) ? true : null), 'the cap');
  }
  await stack.skipTo('2033-01-06T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('umbrella', 'umbrella-2', '2033-01-06T00:00:00Z', 1))).json.errors).toEqual([
    expect.objectContaining({ index: 0, code: 'usage_cap_reached' }),
  ]);

  // Jan 10: immediate changes to a 500.00 cap and to no cap at all.
  await stack.skipTo('2033-01-10T00:00:00Z');
  for (const [id, planCode] of [[upgraded, 'cap-500'], [uncapped, 'no-cap']]) {
    const change = await stack.api.call('POST', `/v1/subscriptions/${id}/plan-change`, { plan_code: planCode, effective: 'immediate' }, { 'Idempotency-Key': `up-${id}` });
    expect(change.status).toBe(200);
  }
  await stack.skipTo('2033-01-11T00:00:00Z');
  const after = {
    umbrella: (await stack.api.call('POST', '/v1/events', calls('umbrella', 'umbrella-3', '2033-01-11T00:00:00Z', 10))).json,
    hooli: (await stack.api.call('POST', '/v1/events', calls('hooli', 'hooli-3', '2033-01-11T00:00:00Z', 10))).json,
  };
  expect({ umbrella: after.umbrella.accepted, hooli: after.hooli.accepted, capped: [await cappedUntil(upgraded), await cappedUntil(uncapped)] }).toEqual({
    umbrella: 1,
    hooli: 1,
    capped: [null, null],
  });
});

test('an immediate downgrade to a cap the period has already passed caps the usage at once', async () => {
  const id = ids.globex;
  // Jan 15: 40 calls (40.00), under the 500.00 cap; Jan 16 down to a 30.00 cap, which January has passed.
  await stack.skipTo('2033-01-15T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('globex', 'globex-1', '2033-01-15T00:00:00Z', 40))).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2033-01-16T00:00:00Z');
  const change = await stack.api.call('POST', `/v1/subscriptions/${id}/plan-change`, { plan_code: 'cap-30', effective: 'immediate' }, { 'Idempotency-Key': `down-${id}` });
  expect(change.status).toBe(200);
  await stack.skipTo('2033-01-17T00:00:00Z');
  const refused = (await stack.api.call('POST', '/v1/events', calls('globex', 'globex-2', '2033-01-17T00:00:00Z', 1))).json;
  expect({ errors: refused.errors, capped: (await stack.db('subscriptions').where({ id }).first()).usage_capped_until }).toEqual({
    errors: [expect.objectContaining({ index: 0, code: 'usage_cap_reached' })],
    capped: new Date('2033-02-01T00:00:00Z'),
  });
});

test('a second change in the period (back down to a 50.00 cap) counts the usage the first one billed', async () => {
  // hooli: 60.00 on cap-50 billed by the Jan 10 change, 10.00 on no-cap since: January has spent 70.00.
  const id = ids.hooli;
  await stack.skipTo('2033-01-18T00:00:00Z');
  const change = await stack.api.call('POST', `/v1/subscriptions/${id}/plan-change`, { plan_code: 'cap-50', effective: 'immediate' }, { 'Idempotency-Key': `down-${id}` });
  expect(change.status).toBe(200);
  const refused = (await stack.api.call('POST', '/v1/events', calls('hooli', 'hooli-4', '2033-01-18T00:00:00Z', 1))).json;
  expect({ errors: refused.errors, capped: (await stack.db('subscriptions').where({ id }).first()).usage_capped_until }).toEqual({
    errors: [expect.objectContaining({ index: 0, code: 'usage_cap_reached' })],
    capped: new Date('2033-02-01T00:00:00Z'),
  });
});
