/**
 * The API's threshold check runs over a batch of customers (everyone with usage since the last check). One
 * subscription whose open usage cannot be rated (a seat removal whose addition has not arrived yet takes the level
 * below 0, which the proration refuses until the missing change comes) threw out of the whole batch: the customers
 * after it were never signaled, and since the failing customer stays due, every later batch failed the same way,
 * so no threshold invoice went out for anyone on that API process. Each subscription is checked on its own now.
 * API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceRow } from '../../store/invoices';
import { UsageThresholdSignals } from '../../api/usage-thresholds';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

async function subscribe(externalId: string, planCode: string): Promise<{ customerId: string; subscriptionId: string }> {
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: planCode, start_at: '2032-03-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  return { customerId: customer.json.id, subscriptionId: subscription.json.id };
}

test('a subscription whose usage cannot be rated yet does not stop the threshold signals of the others', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'seats', name: 'Seats', event_type: 'seat.changed', aggregation: 'prorated_sum', property: 'delta' })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  for (const [code, metric, unitPrice] of [['seats-progressive', 'seats', '10.00'], ['calls-progressive', 'calls', '1.00']]) {
    const plan = await stack.api.call('POST', '/v1/plans', {
      code,
      name: code,
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: '0',
      usage_grace_period: 'PT1H',
      charges: [{ metric_code: metric, price: { model: 'per_unit', unitPrice } }],
      usage_thresholds: { amounts: ['100.00'] },
    });
    expect(plan.status).toBe(201);
  }
  const seats = await subscribe('hooli', 'seats-progressive');
  const calls = await subscribe('pied-piper', 'calls-progressive');
  await stack.skipTo('2032-03-05T00:00:00Z');
  await eventually(async () => (await stack.db('subscriptions').whereIn('id', [seats.subscriptionId, calls.subscriptionId]).whereNotNull('current_period_start')).length === 2, 'both periods to open');

  // Hooli: a seat removed whose addition is still on its way (level -1 until it comes). Pied Piper: 150 calls, past 100.00.
  const events = await stack.api.call('POST', '/v1/events', {
    events: [
      { id: 'seat-out', customer: 'hooli', type: 'seat.changed', timestamp: '2032-03-04T00:00:00Z', properties: { delta: -1 } },
      { id: 'calls-1', customer: 'pied-piper', type: 'api.calls', timestamp: '2032-03-04T00:00:00Z', properties: { n: 150 } },
    ],
  });
  expect(events.json).toMatchObject({ accepted: 2 });

  // One batch, as the API's coalescer checks everyone with new usage: Hooli's failure is still reported (and kept
  // due, to be checked again), but Pied Piper is signaled and gets its threshold invoice.
  const thresholds = new UsageThresholdSignals(stack.db, stack.env.client);
  const checked = await thresholds.check([seats.customerId, calls.customerId], new Date(stack.now().getTime() + 1)).then(
    (sent) => ({ sent }),
    (error: Error) => ({ error: error.message }),
  );
  expect(checked).toEqual({ error: expect.stringMatching(/below 0/) });
  const invoice = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: calls.subscriptionId, kind: 'threshold' }).first(),
    "Pied Piper's threshold invoice",
    { timeoutMs: 10_000 },
  );
  expect(Number(invoice.total).toFixed(2)).toBe('150.00');
});
