/**
 * The wallet's available balance (GET /v1/customers/:id/wallet, the wallet entitlement) with progressive billing: a
 * threshold invoice bills part of the period's usage mid-period (charged, not drawn from the wallet), and the
 * period invoice takes what it billed back before the wallet pays (docs/pricing.md): the wallet draws only the usage
 * no threshold invoice billed. The available balance still subtracted all of the period's usage, so it showed the
 * customer less credit than the next invoice leaves them (and a wallet feature could say "no access" too early).
 * API, workflow, time-skipping server and a real Postgres.
 */
import { UsageThresholdSignals } from '../../api/usage-thresholds';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'initech', type: 'api.calls', timestamp, properties: { n } });
const money = (amount: string): string => Number(amount).toFixed(2);

test('usage a threshold invoice billed is not pending on the wallet: the available balance is what the period invoice leaves', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'payg',
    name: 'Pay as you go',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '10.00',
    usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '0.25' } }],
    usage_thresholds: { amounts: ['100.00'] },
    features: [{ code: 'ai_credits', kind: 'wallet' }],
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'initech', name: 'Initech', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const customerId: string = customer.json.id;
  expect((await stack.api.call('POST', `/v1/customers/${customerId}/wallet/grants`, { amount: '200.00', source: 'promotional' })).status).toBe(201);
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customerId, plan_code: 'payg', start_at: '2032-03-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  await stack.skipTo('2032-03-01T00:01:00Z');
  await eventually(async () => (await stack.db('subscriptions').where({ id: subscriptionId }).first())?.current_period_start, 'the first period to open');

  // Timeline (UTC, 2032), calls at 0.25, threshold 100.00, a 200.00 promotional grant:
  //   Mar 10  450 calls = 112.50 -> threshold invoice 112.50, charged to the card
  //   Mar 20  100 calls = 25.00
  //   Apr 1 01:00  period invoice: 10.00 + 137.50 - 112.50 = 35.00, of which the wallet pays the 25.00 usage
  await stack.skipTo('2032-03-10T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('a1', '2032-03-09T00:00:00Z', 450))).json).toMatchObject({ accepted: 1 });
  // The stack's API sends no usage signals of its own: the detection it runs after ingestion, called here.
  expect(await new UsageThresholdSignals(stack.db, stack.env.client).check([customerId], stack.now())).toBe(1);
  await eventually(
    async () => (await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'threshold' })).some((invoice) => invoice.status === 'paid'),
    'the paid threshold invoice',
  );
  const walletView = async () => (await stack.api.call('GET', `/v1/customers/${customerId}/wallet`)).json;
  // The 112.50 is billed and paid: nothing of it is left for the wallet to pay.
  expect(await walletView()).toMatchObject({ balance: '200.00', pending_usage: '0.00', available: '200.00' });

  await stack.skipTo('2032-03-20T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('a2', '2032-03-19T00:00:00Z', 100))).json).toMatchObject({ accepted: 1 });
  expect(await walletView()).toMatchObject({ balance: '200.00', pending_usage: '25.00', available: '175.00' });
  expect((await stack.api.call('GET', `/v1/customers/${customerId}/entitlements/ai_credits`)).json).toMatchObject({ has_access: true, balance: '175.00' });

  // The period invoice draws exactly what was pending: the balance it leaves is the available balance shown.
  await stack.skipTo('2032-04-01T02:00:00Z');
  const april = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2032-04-01T00:00:00Z').first(),
    "April's invoice",
  );
  const lines = (await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: april.id }).orderBy('position')).map((line) => [line.kind, money(line.amount)]);
  expect(lines).toEqual([
    ['flat_fee', '10.00'],
    ['usage', '137.50'],
    ['threshold_credit', '-112.50'],
    ['credit', '-25.00'],
  ]);
  expect(await walletView()).toMatchObject({ balance: '175.00' });
});
