/**
 * The usage projection (GET /v1/subscriptions/:id/usage) after an immediate plan change: the proration invoice billed
 * the period's usage up to the change, and the period's own invoice bills only what came after it. An event stamped
 * before the change that arrives after it is late usage (waiting for a re-rating), on neither invoice, yet the
 * projection counted it, at the new plan's price. API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'cyberdyne', type: 'api.calls', timestamp, properties: { n } });

test('the projection after an immediate plan change shows what the period invoice will bill, not the late usage before the change', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  for (const [code, unitPrice] of [['calls-a', '0.10'], ['calls-b', '0.20']]) {
    const plan = await stack.api.call('POST', '/v1/plans', { code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '0', charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice } }] });
    expect(plan.status).toBe(201);
  }
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'cyberdyne', name: 'Cyberdyne', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'calls-a', start_at: '2034-01-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;

  // Timeline (UTC, 2034): Jan 4 100 calls on A (0.10). Jan 10 immediate change to B (0.20): the proration invoice
  // bills the 100 calls (10.00). Jan 11: 30 calls of Jan 11, and 50 late calls stamped Jan 8 (before the change).
  await stack.skipTo('2034-01-05T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('c1', '2034-01-04T00:00:00Z', 100))).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2034-01-10T00:00:00Z');
  const change = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'calls-b', effective: 'immediate' }, { 'Idempotency-Key': 'cyberdyne-to-b' });
  expect(change.status).toBe(200);
  await stack.skipTo('2034-01-11T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { events: [calls('c2', '2034-01-11T00:00:00Z', 30), calls('late', '2034-01-08T00:00:00Z', 50)] })).json).toMatchObject({ accepted: 2 });

  const usage = await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
  expect(usage.status).toBe(200);
  expect(usage.json.usage).toEqual([expect.objectContaining({ metric_code: 'calls', quantity: '30', event_count: 1, amount: '6.00' })]);
  expect(usage.json.projected.usage_total).toBe('6.00');
  const late = await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/late-usage`);
  expect(late.json.data.map((event: { id: string }) => event.id)).toEqual(['late']);

  // February's invoice bills January from the change: 30 calls at 0.20, what the projection showed.
  await stack.skipTo('2034-02-02T00:00:00Z');
  const february = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2034-02-01T00:00:00Z').first(),
    "February's invoice",
  );
  const usageLines = (await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: february.id, kind: 'usage' })).map((line) => [line.quantity, Number(line.amount).toFixed(2)]);
  expect(usageLines).toEqual([['30.000000000000', '6.00']]);
});
