/**
 * Cost tables have a currency (docs/pricing.md "Cost tables"). One metric is sold by a USD plan and a EUR plan, both
 * cost_plus: each subscription is costed only with its plan currency's tables. Before, the tables of every currency
 * formed one timeline read "in the plan's currency": the EUR invoice billed the USD figures as euros, and the
 * margins report subtracted USD costs from EUR revenue. Real API, workflow, activities and Postgres on a
 * time-skipping Temporal server.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import type { UsageClosure } from '../../store/usage';
import { createTestApiKey } from '../support/api-keys';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

const tokens = (id: string, customer: string, timestamp: string, count: number) => ({ id, customer, type: 'gen.tokens', timestamp, properties: { tokens: count } });
const table = (currency: string, effectiveFrom: string, unitCost: string) => ({ currency, effective_from: effectiveFrom, costs: [{ match: {}, unit_cost: unitCost }] });

// The provider's prices, as finance enters them (UTC, 2033):
//   Mar 1    USD 0.00002 per token
//   Mar 2    EUR 0.000016 per token       (the EUR price list, its own timeline)
//   Mar 15   USD 0.000024 per token       (a USD price rise: no effect on EUR costs)
const USD_MARCH_1 = table('USD', '2033-03-01T00:00:00Z', '0.00002');
const EUR_MARCH_2 = table('EUR', '2033-03-02T00:00:00Z', '0.000016');
const USD_MARCH_15 = table('USD', '2033-03-15T00:00:00Z', '0.000024');

test('a USD and a EUR cost_plus plan on one metric are each billed, and margined, with their own currency\'s cost tables', async () => {
  const finance = (await createTestApiKey(stack.db, 'finance')).headers;
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'gen_tokens', name: 'Generated tokens', event_type: 'gen.tokens', aggregation: 'sum', property: 'tokens' })).status).toBe(201);
  for (const body of [USD_MARCH_1, EUR_MARCH_2, USD_MARCH_15]) {
    expect(await stack.api.call('POST', '/v1/metrics/gen_tokens/cost-tables', body, finance)).toMatchObject({ status: 201, json: { currency: body.currency, effective_from: new Date(body.effective_from).toISOString() } });
  }
  // Without a currency a table is refused (nothing stored): no default can know which currency the figures are in.
  expect(await stack.api.call('POST', '/v1/metrics/gen_tokens/cost-tables', { effective_from: '2033-03-03T00:00:00Z', costs: [{ match: {}, unit_cost: '1' }] }, finance)).toMatchObject({ status: 422 });
  expect(await stack.api.call('POST', '/v1/metrics/gen_tokens/cost-tables', table('ZZZ', '2033-03-03T00:00:00Z', '1'), finance)).toMatchObject({ status: 422 });
  // Replays and conflicts hold per currency.
  expect((await stack.api.call('POST', '/v1/metrics/gen_tokens/cost-tables', EUR_MARCH_2, finance)).status).toBe(200);
  expect(await stack.api.call('POST', '/v1/metrics/gen_tokens/cost-tables', table('EUR', '2033-03-02T00:00:00Z', '0.00003'), finance)).toMatchObject({ status: 409, json: { code: 'cost_table_exists' } });
  const listed = (query: string) => stack.api.call('GET', `/v1/metrics/gen_tokens/cost-tables${query}`, undefined, finance).then((response) => response.json.data.map((row: { currency: string; effective_from: string }) => [row.currency, row.effective_from]));
  expect(await listed('')).toEqual([
    ['EUR', '2033-03-02T00:00:00.000Z'],
    ['USD', '2033-03-01T00:00:00.000Z'],
    ['USD', '2033-03-15T00:00:00.000Z'],
  ]);
  expect(await listed('?currency=EUR')).toEqual([['EUR', '2033-03-02T00:00:00.000Z']]);

  const plan = (code: string, currency: string) => ({ code, name: code, currency, billing_interval: 'P1M', flat_fee: '0', charges: [{ metric_code: 'gen_tokens', display_name: 'Tokens', price: { model: 'cost_plus', markup: '0.25' } }] });
  expect((await stack.api.call('POST', '/v1/plans', plan('gen-usd', 'USD'))).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/plans', plan('gen-eur', 'EUR'))).status).toBe(201);
  const ustin = await stack.api.call('POST', '/v1/customers', { external_id: 'ustin', name: 'Ustin', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const eva = await stack.api.call('POST', '/v1/customers', { external_id: 'eva', name: 'Eva', currency: 'EUR', payment_method: 'pm_sandbox_ok' });
  const usdSub = await stack.api.call('POST', '/v1/subscriptions', { customer_id: ustin.json.id, plan_code: 'gen-usd', start_at: '2033-03-01T00:00:00Z' });
  const eurSub = await stack.api.call('POST', '/v1/subscriptions', { customer_id: eva.json.id, plan_code: 'gen-eur', start_at: '2033-03-01T00:00:00Z' });
  expect([usdSub.status, eurSub.status]).toEqual([201, 201]);

  // Usage (both customers the same):
  //   Mar 1 12:00   100,000   EUR: before the first EUR table -> uncosted (billed 0, shown); USD: 0.00002
  //   Mar 5       1,000,000   USD 0.00002 (table of Mar 1)   EUR 0.000016 (table of Mar 2)
  //   Mar 20        500,000   USD 0.000024 (table of Mar 15) EUR 0.000016 (table of Mar 2)
  // Apr 1 invoice, markup 0.25:
  //   USD: (100,000 × 0.00002 + 1,000,000 × 0.00002 + 500,000 × 0.000024) = 2.00 + 20.00 + 12.00 = 34.00 × 1.25 = 42.50
  //   EUR: (1,000,000 × 0.000016 + 500,000 × 0.000016) = 16.00 + 8.00 = 24.00 × 1.25 = 30.00, uncosted 100,000
  // Before: one timeline Mar 1 USD, Mar 2 EUR, Mar 15 USD for both: 2.00 + 16.00 + 12.00 = 30.00 × 1.25 = 37.50 each.
  await skipTo('2033-03-21T00:00:00Z');
  const sent = await stack.api.call('POST', '/v1/events', {
    events: [
      tokens('u1', 'ustin', '2033-03-01T12:00:00Z', 100_000),
      tokens('u2', 'ustin', '2033-03-05T00:00:00Z', 1_000_000),
      tokens('u3', 'ustin', '2033-03-20T00:00:00Z', 500_000),
      tokens('e1', 'eva', '2033-03-01T12:00:00Z', 100_000),
      tokens('e2', 'eva', '2033-03-05T00:00:00Z', 1_000_000),
      tokens('e3', 'eva', '2033-03-20T00:00:00Z', 500_000),
    ],
  });
  expect(sent.json).toMatchObject({ accepted: 6, rejected: 0 });

  // The real-time preview costs with the plan currency's tables, as the invoice will.
  const preview = async (id: string) => (await stack.api.call('GET', `/v1/subscriptions/${id}/usage`)).json.projected.lines.map((line: { amount: string }) => line.amount);
  expect(await preview(usdSub.json.id)).toEqual(['42.50']);
  expect(await preview(eurSub.json.id)).toEqual(['30.00']);

  await skipTo('2033-04-02T00:00:00Z');
  const usageLine = async (subscriptionId: string) => {
    const invoice = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2033-04-01T00:00:00Z').first();
    const [line] = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice!.id, kind: 'usage' });
    return { currency: invoice!.currency, amount: line.amount, breakdown: line.breakdown };
  };
  expect(await usageLine(usdSub.json.id)).toMatchObject({
    currency: 'USD', amount: '42.500000000000',
    breakdown: { model: 'cost_plus', cost: '34', uncostedQuantity: '0', segments: [
      { effectiveFrom: '2033-03-01T00:00:00.000Z', quantity: '1100000', unitCost: '0.00002' },
      { effectiveFrom: '2033-03-15T00:00:00.000Z', quantity: '500000', unitCost: '0.000024' },
    ] },
  });
  expect(await usageLine(eurSub.json.id)).toMatchObject({
    currency: 'EUR', amount: '30.000000000000',
    breakdown: { model: 'cost_plus', cost: '24', uncostedQuantity: '100000', segments: [
      { effectiveFrom: null, quantity: '100000', unitCost: null },
      { effectiveFrom: '2033-03-02T00:00:00.000Z', quantity: '1500000', unitCost: '0.000016' },
    ] },
  });
  // The closure says which currency its recorded costs are in: its plan's.
  const closure = async (subscriptionId: string) => (await stack.db<UsageClosure>('usage_period_closures').where({ subscription_id: subscriptionId }).first())!.totals.gen_tokens;
  expect(await closure(usdSub.json.id)).toMatchObject({ costCurrency: 'USD' });
  expect(await closure(eurSub.json.id)).toMatchObject({ costCurrency: 'EUR' });

  // Margins for March: each subscription's cost in its own currency.
  const report = await stack.api.call('GET', '/v1/reports/margins?from=2033-03-01T00:00:00Z&to=2033-04-01T00:00:00Z', undefined, finance);
  const row = (external: string) => report.json.data.find((entry: { customer: { external_id: string } }) => entry.customer.external_id === external);
  expect(row('ustin')).toMatchObject({ currency: 'USD', revenue: '42.50', cost: '34.00', margin: '8.50' });
  expect(row('eva')).toMatchObject({ currency: 'EUR', revenue: '30.00', cost: '24.00', margin: '6.00' });

  // Another currency's table from the same instant is another timeline's, not a conflict.
  expect((await stack.api.call('POST', '/v1/metrics/gen_tokens/cost-tables', table('EUR', '2033-03-15T00:00:00Z', '0.00002'), finance)).status).toBe(201);

  for (const id of [usdSub.json.id, eurSub.json.id]) await stack.env.client.workflow.getHandle(`subscription:${id}`).terminate('test done');
});

const skipTo = (instant: string): Promise<void> => stack.skipTo(instant);
