/**
 * The usage projection (GET /v1/subscriptions/:id/usage, the usage page's "projected usage charges") and the
 * wallet's available balance after the customer accepted a retention offer. The period's invoice takes the discount
 * off the usage it bills (and the wallet pays the discounted usage), but both figures shown before it ignored the
 * discount: they told the customer 100.00 where the invoice billed 70.00. API, workflow, time-skipping server and a
 * real Postgres.
 *
 *   2033 (UTC), calls at 0.25, no fee, retention offer 30 % off one invoice, 200.00 promotional credit:
 *   Mar 1 start | Mar 5 asks to cancel, accepts the offer | Mar 10 400 calls = 100.00
 *   Apr 1 invoice: usage 100.00, discount -30.00, wallet pays 70.00          (shown in March: 70.00, 130.00 left)
 *   Apr 10 400 calls = 100.00 | May 1 invoice: the discount is used up, 100.00 (shown in April: 100.00)
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';
import { insertPlan } from '../support/fixtures';

const stack = useApiStack();

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'retained', type: 'rd.calls', timestamp, properties: { n } });

test('the projection and the available balance show the usage as the discounted invoice bills it', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'rd_calls', name: 'Calls', event_type: 'rd.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  await insertPlan(stack.db, {
    code: 'retained-usage',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metricCode: 'rd_calls', price: { model: 'per_unit', unitPrice: '0.25' } }] as never,
    settings: { retentionOffer: { percentOff: '30', periods: 1, expiresAfter: 'P7D' } },
  });
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'retained', name: 'Retained', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  expect(customer.status).toBe(201);
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'retained-usage', start_at: '2033-03-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  const subscriptionId: string = subscription.json.id;
  expect((await stack.api.call('POST', `/v1/customers/${customer.json.id}/wallet/grants`, { amount: '200.00', source: 'promotional' })).status).toBe(201);

  await stack.skipTo('2033-03-05T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'too expensive' })).json).toMatchObject({ status: 'retention_offered' });
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/retention/accept`, {})).status).toBe(200);
  await stack.skipTo('2033-03-10T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('m1', '2033-03-09T00:00:00Z', 400))).json).toMatchObject({ accepted: 1 });

  const shown = async () => {
    const preview = await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
    expect(preview.status).toBe(200);
    const wallet = await stack.api.call('GET', `/v1/customers/${customer.json.id}/wallet`);
    return { usage_total: preview.json.projected.usage_total, subtotal: preview.json.projected.subtotal, available: wallet.json.available };
  };
  const billed = async (periodStart: string) => {
    const invoice = await eventually(
      async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', periodStart).first(),
      `the invoice of ${periodStart}`,
    );
    const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id }).orderBy('position');
    const balance = (await stack.api.call('GET', `/v1/customers/${customer.json.id}/wallet`)).json.balance;
    return { lines: lines.map((line) => [line.kind, Number(line.amount).toFixed(2)]), balance };
  };

  const march = await shown();
  await stack.skipTo('2033-04-01T02:00:00Z');
  expect(await billed('2033-04-01T00:00:00Z')).toEqual({
    lines: [
      ['usage', '100.00'],
      ['discount', '-30.00'],
      ['credit', '-70.00'],
    ],
    balance: '130.00',
  });
  // What was shown in March is what April's invoice billed for March's usage, and what the wallet was left with.
  expect(march).toEqual({ usage_total: '100.00', subtotal: '70.00', available: '130.00' });

  // The one discounted invoice is used: April's usage is shown, and billed, at full price.
  await stack.skipTo('2033-04-10T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('a1', '2033-04-09T00:00:00Z', 400))).json).toMatchObject({ accepted: 1 });
  const april = await shown();
  await stack.skipTo('2033-05-01T02:00:00Z');
  expect(await billed('2033-05-01T00:00:00Z')).toEqual({ lines: [['usage', '100.00'], ['credit', '-100.00']], balance: '30.00' });
  expect(april).toEqual({ usage_total: '100.00', subtotal: '100.00', available: '30.00' });
});

test('with a fee on the same invoice the available balance is the draw to the cent', async () => {
  // 2034, 20.00 fee, 0.01 a call, 30 % off one invoice, 200.00 promotional credit. Mar 10: 1234 calls = 12.34.
  // Apr 1 invoice: 20.00 fee + 12.34 usage, one discount over both: -9.70 (9.702). The usage keeps 22.64 / 32.34 of
  // itself, 8.6387..., the wallet draws 8.63 (rounded down) and is left with 191.37. The usage discounted on its own
  // (-3.70 of 12.34) keeps 8.64, which showed 191.36 available: the invoice's fee belongs in the discount's base.
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'rf_calls', name: 'Calls', event_type: 'rf.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  await insertPlan(stack.db, {
    code: 'retained-fee',
    billing_interval: 'P1M',
    flat_fee: '20.00',
    charges: [{ metricCode: 'rf_calls', price: { model: 'per_unit', unitPrice: '0.01' } }] as never,
    settings: { retentionOffer: { percentOff: '30', periods: 1, expiresAfter: 'P7D' } },
  });
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'retained-fee', name: 'Retained', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'retained-fee', start_at: '2034-03-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  expect((await stack.api.call('POST', `/v1/customers/${customer.json.id}/wallet/grants`, { amount: '200.00', source: 'promotional' })).status).toBe(201);
  await stack.skipTo('2034-03-05T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'too expensive' })).json).toMatchObject({ status: 'retention_offered' });
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/retention/accept`, {})).status).toBe(200);
  await stack.skipTo('2034-03-10T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { id: 'f1', customer: 'retained-fee', type: 'rf.calls', timestamp: '2034-03-09T00:00:00Z', properties: { n: 1234 } })).json).toMatchObject({ accepted: 1 });
  const available = (await stack.api.call('GET', `/v1/customers/${customer.json.id}/wallet`)).json.available;

  await stack.skipTo('2034-04-01T02:00:00Z');
  const invoice = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2034-04-01T00:00:00Z').first(),
    "April's invoice",
  );
  const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id }).orderBy('position');
  expect(lines.map((line) => [line.kind, Number(line.amount).toFixed(2)])).toEqual([
    ['flat_fee', '20.00'],
    ['usage', '12.34'],
    ['discount', '-9.70'],
    ['credit', '-8.63'],
  ]);
  expect((await stack.api.call('GET', `/v1/customers/${customer.json.id}/wallet`)).json.balance).toBe('191.37');
  expect(available).toBe('191.37');
});

test('an offer accepted in the grace window: the invoice it discounted counts, the next period is shown at full price', async () => {
  // 2035, 0.25 a call, no fee, 30 % off one invoice, grace PT1H. Apr 1 00:20 (in the grace window) asks to cancel and
  // accepts: the Apr 1 invoice, written at 01:00, takes the discount off March's usage. April's usage is billed on
  // May 1 at full price, so it is shown at full price (the discount was counted only from invoices after the offer).
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'rg_calls', name: 'Calls', event_type: 'rg.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  await insertPlan(stack.db, {
    code: 'retained-grace',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metricCode: 'rg_calls', price: { model: 'per_unit', unitPrice: '0.25' } }] as never,
    settings: { usageGracePeriod: 'PT1H', retentionOffer: { percentOff: '30', periods: 1, expiresAfter: 'P7D' } },
  });
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'retained-grace', name: 'Retained', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'retained-grace', start_at: '2035-03-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  const event = (id: string, timestamp: string) => ({ id, customer: 'retained-grace', type: 'rg.calls', timestamp, properties: { n: 400 } });
  await stack.skipTo('2035-03-10T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', event('g1', '2035-03-09T00:00:00Z'))).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2035-04-01T00:20:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'too expensive' })).json).toMatchObject({ status: 'retention_offered' });
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/retention/accept`, {})).status).toBe(200);
  await stack.skipTo('2035-04-10T00:00:00Z');
  const april = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2035-04-01T00:00:00Z').first();
  const aprilLines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: april!.id }).orderBy('position');
  expect(aprilLines.map((line) => [line.kind, Number(line.amount).toFixed(2)])).toEqual([['usage', '100.00'], ['discount', '-30.00']]);
  expect((await stack.api.call('POST', '/v1/events', event('g2', '2035-04-09T00:00:00Z'))).json).toMatchObject({ accepted: 1 });
  const shown = (await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage`)).json.projected.subtotal;
  await stack.skipTo('2035-05-01T02:00:00Z');
  const may = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2035-05-01T00:00:00Z').first(),
    "May's invoice",
  );
  const mayLines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: may.id }).orderBy('position');
  expect(mayLines.map((line) => [line.kind, Number(line.amount).toFixed(2)])).toEqual([['usage', '100.00']]);
  expect(shown).toBe('100.00');
});

test('cancelled at the period end after all: the closing invoice gives no discount, and none is shown', async () => {
  // 2036, 0.25 a call, no fee, 30 % off three invoices. Mar 5 accepts the offer; Mar 10 400 calls = 100.00; Mar 20
  // cancels at the period end after all (no second offer within a year). The closing invoice bills 100.00.
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'rc_calls', name: 'Calls', event_type: 'rc.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  await insertPlan(stack.db, {
    code: 'retained-cancel',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metricCode: 'rc_calls', price: { model: 'per_unit', unitPrice: '0.25' } }] as never,
    settings: { retentionOffer: { percentOff: '30', periods: 3, expiresAfter: 'P7D' } },
  });
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'retained-cancel', name: 'Retained', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'retained-cancel', start_at: '2036-03-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  await stack.skipTo('2036-03-05T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'too expensive' })).json).toMatchObject({ status: 'retention_offered' });
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/retention/accept`, {})).status).toBe(200);
  await stack.skipTo('2036-03-10T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { id: 'c1', customer: 'retained-cancel', type: 'rc.calls', timestamp: '2036-03-09T00:00:00Z', properties: { n: 400 } })).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2036-03-20T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'leaving anyway' })).json).toMatchObject({ status: 'pending_cancellation' });
  const shown = (await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage`)).json.projected.subtotal;
  await stack.skipTo('2036-04-01T02:00:00Z');
  const closing = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'closing' }).first(), 'the closing invoice');
  const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: closing.id }).orderBy('position');
  expect(lines.map((line) => [line.kind, Number(line.amount).toFixed(2)])).toEqual([['usage', '100.00']]);
  expect(shown).toBe('100.00');
});
