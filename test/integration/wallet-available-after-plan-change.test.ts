/**
 * The wallet's available balance (GET /v1/customers/:id/wallet) after an immediate plan change: the proration
 * invoice billed (and the wallet paid) the period's usage up to the change, and the period's own invoice draws only
 * for the usage after it. An event stamped before the change that arrives after it is late usage (re-rating bills
 * it, on an adjustment invoice the wallet does not pay): the next draw never takes it, yet the available balance
 * counted it, at the new plan's price. API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'tyrell', type: 'api.calls', timestamp, properties: { n } });

test('after an immediate plan change the available balance counts what the period invoice will draw, not the late usage before the change', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  for (const [code, unitPrice] of [['calls-a', '0.10'], ['calls-b', '0.20']]) {
    const plan = await stack.api.call('POST', '/v1/plans', { code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '0', charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice } }] });
    expect(plan.status).toBe(201);
  }
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'tyrell', name: 'Tyrell', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const customerId: string = customer.json.id;
  expect((await stack.api.call('POST', `/v1/customers/${customerId}/wallet/grants`, { amount: '100.00', source: 'promotional' })).status).toBe(201);
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customerId, plan_code: 'calls-a', start_at: '2033-01-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;

  // Timeline (UTC, 2033), a 100.00 promotional grant: Jan 4 100 calls on A (0.10). Jan 10 immediate change to B
  // (0.20): the proration invoice bills the 100 calls (10.00), paid from the wallet (balance 90.00). Jan 11: 30 calls
  // of Jan 11, and 50 late calls stamped Jan 8 (before the change), on neither invoice.
  await stack.skipTo('2033-01-05T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('c1', '2033-01-04T00:00:00Z', 100))).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2033-01-10T00:00:00Z');
  const change = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'calls-b', effective: 'immediate' }, { 'Idempotency-Key': 'tyrell-to-b' });
  expect(change.status).toBe(200);
  await eventually(async () => (await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'proration' }).first())?.finalization_seq != null, 'the proration invoice');
  await stack.skipTo('2033-01-11T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { events: [calls('c2', '2033-01-11T00:00:00Z', 30), calls('late', '2033-01-08T00:00:00Z', 50)] })).json).toMatchObject({ accepted: 2 });

  // The period invoice will draw 30 calls at 0.20 = 6.00: available 90.00 - 6.00 = 84.00.
  const wallet = await stack.api.call('GET', `/v1/customers/${customerId}/wallet`);
  expect(wallet.status).toBe(200);
  expect(wallet.json).toMatchObject({ balance: '90.00', pending_usage: '6.00', available: '84.00' });

  // February's invoice bills January from the change and draws what the available balance promised.
  await stack.skipTo('2033-02-02T00:00:00Z');
  const february = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2033-02-01T00:00:00Z').first(),
    "February's invoice",
  );
  const lines = (await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: february.id }).orderBy('position')).map((line) => [line.kind, Number(line.amount).toFixed(2)]);
  expect(lines).toEqual([['usage', '6.00'], ['credit', '-6.00']]);
  expect((await stack.api.call('GET', `/v1/customers/${customerId}/wallet`)).json).toMatchObject({ balance: '84.00' });
});
