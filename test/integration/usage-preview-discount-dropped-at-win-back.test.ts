/**
 * A retention discount still running when the customer leaves after all (canceled now) ends with that subscription:
 * a win-back restart starts it afresh, without the discount (workflows/subscription/offers.ts restarts with
 * `discount: null`). The figures shown before the restart's invoices, the usage projection and the wallet's
 * available balance, read the discount from the database (store/offers.ts `retentionDiscountOnPeriodInvoice`).
 *
 * Before, they still found the accepted retention offer, counted the invoices written since, and took 30 % off
 * usage that the restart's invoice bills at full price: shown 70.00 where 100.00 is billed, and the wallet showed
 * 30.00 more available than its draw left. API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';
import { insertPlan } from '../support/fixtures';

const stack = useApiStack();

test('after a win-back restart the dropped retention discount is no longer shown', async () => {
  // 2034, 0.25 a call, no fee, 30 % off three invoices, a win-back offer a day after churn (P7D); a 200.00 grant.
  //   Mar 5 asks to cancel -> offered, accepts; Mar 20 cancels now (no second offer within a year) -> canceled;
  //   Mar 21 win-back offer; Mar 22 accepted -> restarted, period [Mar 22, Apr 22);
  //   Mar 23 400 calls = 100.00: shown 100.00, billed on Apr 22 (the restart's moment a month on) at 100.00 (no discount), the wallet left with 100.00.
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'wb_calls', name: 'Calls', event_type: 'wb.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  await insertPlan(stack.db, {
    code: 'retained-won-back',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metricCode: 'wb_calls', price: { model: 'per_unit', unitPrice: '0.25' } }] as never,
    settings: { retentionOffer: { percentOff: '30', periods: 3, expiresAfter: 'P7D' }, winBackOffer: { sendAfter: 'P1D', expiresAfter: 'P7D' } },
  });
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'won-back', name: 'Won back', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  expect(customer.status).toBe(201);
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'retained-won-back', start_at: '2034-03-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  const subscriptionId: string = subscription.json.id;
  expect((await stack.api.call('POST', `/v1/customers/${customer.json.id}/wallet/grants`, { amount: '200.00', source: 'promotional' })).status).toBe(201);

  await stack.skipTo('2034-03-05T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'too expensive' })).json).toMatchObject({ status: 'retention_offered' });
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/retention/accept`, {})).status).toBe(200);
  await stack.skipTo('2034-03-20T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'now', reason: 'leaving anyway' })).json).toMatchObject({ status: 'canceled' });
  await stack.skipTo('2034-03-22T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/win-back/accept`, {})).status).toBe(200);
  await stack.skipTo('2034-03-23T00:00:00Z');
  await eventually(async () => (await stack.db('subscriptions').where({ id: subscriptionId }).first()).status === 'active' || undefined, 'the restart');
  expect((await stack.api.call('POST', '/v1/events', { id: 'w1', customer: 'won-back', type: 'wb.calls', timestamp: '2034-03-23T00:00:00Z', properties: { n: 400 } })).json).toMatchObject({ accepted: 1 });

  const preview = await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
  const wallet = await stack.api.call('GET', `/v1/customers/${customer.json.id}/wallet`);
  const shown = { subtotal: preview.json.projected.subtotal, available: wallet.json.available };

  await stack.skipTo('2034-04-23T00:00:00Z');
  const invoice = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '>=', '2034-04-22T00:00:00Z').first(),
    'the invoice of Apr 22',
  );
  const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id }).orderBy('position');
  const balance = (await stack.api.call('GET', `/v1/customers/${customer.json.id}/wallet`)).json.balance;
  expect({ lines: lines.map((line) => [line.kind, Number(line.amount).toFixed(2)]), balance }).toEqual({ lines: [['usage', '100.00'], ['credit', '-100.00']], balance: '100.00' });
  // What was shown before is what the invoice billed, and what the wallet was left with.
  expect(shown).toEqual({ subtotal: '100.00', available: '100.00' });
});
