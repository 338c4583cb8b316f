/**
 * The usage preview of a cost_plus plan reads the open events raw: the quantity, the per-combination quantities and
 * the split by cost table. Those were separate queries on the pool, so an event ingested between them made the
 * quantity and the cost split disagree, and rating refused it (`missing_cost_segments`): the customer's usage page
 * answered 500 while events were arriving, which for an LLM customer is all the time.
 * Real API, workflow and Postgres on a time-skipping Temporal server; bounded, local traffic only.
 */
import { createTestApiKey } from '../support/api-keys';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

test('the usage preview of a cost_plus plan answers while events keep arriving', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'cp_tokens', name: 'Tokens', event_type: 'cp.usage', aggregation: 'sum', property: 'tokens', group_by: ['model'] })).status).toBe(201);
  const finance = (await createTestApiKey(stack.db, 'finance')).headers;
  expect((await stack.api.call('POST', '/v1/metrics/cp_tokens/cost-tables', { currency: 'USD', effective_from: '2033-03-01T00:00:00Z', costs: [{ match: {}, unit_cost: '0.00001' }] }, finance)).status).toBe(201);
  expect(
    (await stack.api.call('POST', '/v1/plans', {
      code: 'cp-preview', name: 'Cost plus', currency: 'USD', billing_interval: 'P1M', flat_fee: '0',
      charges: [{ metric_code: 'cp_tokens', dimensions: { prices: [], default_price: { model: 'cost_plus', markup: '0.25' } } }],
    })).status,
  ).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'busy', name: 'Busy', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'cp-preview', start_at: '2033-03-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  await stack.skipTo('2033-03-10T00:00:00Z');

  // 60 rounds: one event and one preview at the same time (bounded; loopback only).
  const statuses: string[] = [];
  for (let round = 0; round < 60; round += 1) {
    const [, preview] = await Promise.all([
      stack.api.call('POST', '/v1/events', { events: [{ id: `e${round}`, customer: 'busy', type: 'cp.usage', timestamp: '2033-03-09T00:00:00Z', properties: { model: round % 2 ? 'large' : 'small', tokens: 1000 } }] }),
      stack.api.call('GET', `/v1/subscriptions/${subscription.json.id}/usage`),
    ]);
    statuses.push(`${preview.status} ${preview.status === 200 ? '' : preview.text}`);
  }
  expect(statuses.filter((status) => !status.startsWith('200'))).toEqual([]);
});
