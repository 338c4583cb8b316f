/**
 * Dimensional pricing end to end (issue 14, point 1): a metric grouped by model and direction, one charge pricing
 * every combination, through the real API, workflow, activities and Postgres on a time-skipping Temporal server.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { marginReport } from '../../store/margins';
import { cancelSubscriptionUpdate } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

const skipTo = (instant: string): Promise<void> => stack.skipTo(instant);

const usage = (id: string, customer: string, timestamp: string, model: string, direction: string, tokens: number) => ({
  id,
  customer,
  type: 'llm.usage',
  timestamp,
  properties: { model, direction, tokens },
});

/** Per token: three models × input/output, cached input of any model at a discount, unknown models by default. */
const LLM_PRICES = [
  { match: { model: 'large', direction: 'input' }, price: { model: 'per_unit', unitPrice: '0.00001' } },
  { match: { model: 'large', direction: 'output' }, price: { model: 'per_unit', unitPrice: '0.00003' } },
  { match: { model: 'medium', direction: 'input' }, price: { model: 'per_unit', unitPrice: '0.000003' } },
  { match: { model: 'medium', direction: 'output' }, price: { model: 'per_unit', unitPrice: '0.000015' } },
  { match: { model: 'small', direction: 'input' }, price: { model: 'per_unit', unitPrice: '0.0000005' } },
  { match: { model: 'small', direction: 'output' }, price: { model: 'per_unit', unitPrice: '0.0000015' } },
  { match: { direction: 'cached' }, price: { model: 'per_unit', unitPrice: '0.000001' } },
];

test('a three-period LLM plan bills one line per model and direction, refuses ambiguous catalogs and unpriced usage', async () => {
  const metric = await stack.api.call('POST', '/v1/metrics', { code: 'llm_tokens', name: 'LLM tokens', event_type: 'llm.usage', aggregation: 'sum', property: 'tokens', group_by: ['model', 'direction'], unit_cost: '0.000012' });
  expect(metric).toMatchObject({ status: 201, json: { group_by: ['model', 'direction'] } });

  // {model: large} and {direction: cached} both fit large+cached equally: refused before anything is stored.
  const ambiguous = await stack.api.call('POST', '/v1/plans', {
    code: 'llm-ambiguous', name: 'Ambiguous', currency: 'USD', billing_interval: 'P1M', flat_fee: '0',
    charges: [{ metric_code: 'llm_tokens', dimensions: { prices: [LLM_PRICES[6], { match: { model: 'large' }, price: { model: 'per_unit', unitPrice: '0.00002' } }] } }],
  });
  expect(ambiguous).toMatchObject({ status: 422, json: { code: 'ambiguous_dimension_prices' } });
  const unknownDimension = await stack.api.call('POST', '/v1/plans', {
    code: 'llm-bad', name: 'Bad', currency: 'USD', billing_interval: 'P1M', flat_fee: '0',
    charges: [{ metric_code: 'llm_tokens', dimensions: { prices: [{ match: { region: 'eu' }, price: { model: 'per_unit', unitPrice: '1' } }] } }],
  });
  expect(unknownDimension).toMatchObject({ status: 422, json: { code: 'invalid_dimensions' } });
  expect(await stack.db('plans').whereIn('code', ['llm-ambiguous', 'llm-bad']).count<{ count: string }[]>('* as count')).toEqual([{ count: '0' }]);

  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'llm', name: 'LLM', currency: 'USD', billing_interval: 'P1M', flat_fee: '10.00',
    charges: [{ metric_code: 'llm_tokens', display_name: 'Tokens', dimensions: { prices: LLM_PRICES, default_price: { model: 'per_unit', unitPrice: '0.00002' } } }],
  });
  expect(plan.status).toBe(201);
  expect(plan.json.charges[0].dimensions).toMatchObject({ group_by: ['model', 'direction'], unmatched: 'list', default_price: { model: 'per_unit', unitPrice: '0.00002' } });
  // A strict plan: only the large model is priced, and anything else is refused at ingestion.
  expect(
    (await stack.api.call('POST', '/v1/plans', {
      code: 'llm-strict', name: 'LLM strict', currency: 'USD', billing_interval: 'P1M', flat_fee: '0',
      charges: [{ metric_code: 'llm_tokens', dimensions: { prices: LLM_PRICES.slice(0, 2), unmatched: 'reject' } }],
    })).status,
  ).toBe(201);

  const acme = await stack.api.call('POST', '/v1/customers', { external_id: 'acme', name: 'Acme', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const beta = await stack.api.call('POST', '/v1/customers', { external_id: 'beta', name: 'Beta', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: acme.json.id, plan_code: 'llm', start_at: '2031-03-01T00:00:00Z' });
  expect((await stack.api.call('POST', '/v1/subscriptions', { customer_id: beta.json.id, plan_code: 'llm-strict', start_at: '2031-03-01T00:00:00Z' })).status).toBe(201);
  const subscriptionId: string = subscription.json.id;
  const handle = stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`);

  // Timeline (UTC, 2031), prices per token:
  //   P0 [Mar 1, Apr 1)  large/input 1,000,000 × 0.00001 = 10.00   large/output 200,000 × 0.00003 = 6.00
  //                      large/cached 500,000 × 0.000001 = 0.50    small/output 1,000,000 × 0.0000015 = 1.50
  //                      mystery/input 100,000 × 0.00002 (default) = 2.00                 usage 20.00
  //   Apr 1 01:00        INV = 10.00 flat (April, in advance) + 20.00 March usage = 30.00
  //   P1 [Apr 1, May 1)  medium/input 2,000,000 × 0.000003 = 6.00  medium/output 100,000 × 0.000015 = 1.50
  //   May 1 01:00        INV = 10.00 + 7.50 = 17.50
  //   P2 [May 1, Jun 1)  small/input 3,000,000 × 0.0000005 = 1.50; cancel at period end
  //   Jun 1 01:00        closing INV = 1.50
  await skipTo('2031-03-15T00:00:00Z');
  const march = await stack.api.call('POST', '/v1/events', {
    events: [
      usage('a1', 'acme', '2031-03-02T00:00:00Z', 'large', 'input', 600_000),
      usage('a2', 'acme', '2031-03-03T00:00:00Z', 'large', 'input', 400_000),
      usage('a3', 'acme', '2031-03-04T00:00:00Z', 'large', 'output', 200_000),
      usage('a4', 'acme', '2031-03-05T00:00:00Z', 'large', 'cached', 500_000),
      usage('a5', 'acme', '2031-03-06T00:00:00Z', 'small', 'output', 1_000_000),
      usage('a6', 'acme', '2031-03-07T00:00:00Z', 'mystery', 'input', 100_000),
      usage('b1', 'beta', '2031-03-07T00:00:00Z', 'large', 'output', 1_000),
      usage('b2', 'beta', '2031-03-07T00:00:00Z', 'mystery', 'output', 1_000),
    ],
  });
  expect(march.json).toMatchObject({ accepted: 7, rejected: 1, errors: [{ index: 7, code: 'no_matching_price' }] });

  // The preview rates the same combinations with the same function as the invoice.
  const live = await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
  expect(live.json.usage[0].groups).toHaveLength(5);
  expect(live.json.projected.lines.map((line: { description: string; amount: string }) => [line.description, line.amount])).toEqual([
    ['Tokens (model=large, direction=cached)', '0.50'],
    ['Tokens (model=large, direction=input)', '10.00'],
    ['Tokens (model=large, direction=output)', '6.00'],
    ['Tokens (model=mystery, direction=input)', '2.00'],
    ['Tokens (model=small, direction=output)', '1.50'],
  ]);
  expect(live.json.projected.usage_total).toBe('20.00');

  await skipTo('2031-04-15T00:00:00Z');
  await stack.api.call('POST', '/v1/events', {
    events: [usage('c1', 'acme', '2031-04-02T00:00:00Z', 'medium', 'input', 2_000_000), usage('c2', 'acme', '2031-04-03T00:00:00Z', 'medium', 'output', 100_000)],
  });
  await skipTo('2031-05-10T00:00:00Z');
  await stack.api.call('POST', '/v1/events', { events: [usage('d1', 'acme', '2031-05-02T00:00:00Z', 'small', 'input', 3_000_000)] });
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'test', requestedBy: 'test' }] });
  await handle.result();

  const invoices = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy(['period_start', 'created_at']);
  expect(invoices.map((invoice) => [invoice.kind, invoice.period_start.toISOString().slice(0, 10), invoice.total])).toEqual([
    ['period', '2031-03-01', '10.000000000000'],
    ['period', '2031-04-01', '30.000000000000'],
    ['period', '2031-05-01', '17.500000000000'],
    ['closing', '2031-05-01', '1.500000000000'],
  ]);
  const aprilLines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoices[1].id }).orderBy('position');
  expect(aprilLines.map((line) => [line.kind, line.metric_code, line.description, Number(line.quantity), line.amount, line.breakdown.dimensionKey ?? null])).toEqual([
    ['flat_fee', null, 'LLM subscription fee', 1, '10.000000000000', null],
    ['usage', 'llm_tokens', 'Tokens (model=large, direction=cached)', 500000, '0.500000000000', 'model=large&direction=cached'],
    ['usage', 'llm_tokens', 'Tokens (model=large, direction=input)', 1000000, '10.000000000000', 'model=large&direction=input'],
    ['usage', 'llm_tokens', 'Tokens (model=large, direction=output)', 200000, '6.000000000000', 'model=large&direction=output'],
    ['usage', 'llm_tokens', 'Tokens (model=mystery, direction=input)', 100000, '2.000000000000', 'model=mystery&direction=input'],
    ['usage', 'llm_tokens', 'Tokens (model=small, direction=output)', 1000000, '1.500000000000', 'model=small&direction=output'],
  ]);
  expect(aprilLines[4].breakdown).toMatchObject({ priceSource: { kind: 'default' }, dimensions: { model: 'mystery', direction: 'input' } });
  const mayLines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoices[2].id }).orderBy('position');
  expect(mayLines.map((line) => [line.description, line.amount])).toEqual([
    ['LLM subscription fee', '10.000000000000'],
    ['Tokens (model=medium, direction=input)', '6.000000000000'],
    ['Tokens (model=medium, direction=output)', '1.500000000000'],
  ]);

  // The margins report splits the same combinations: March usage at a unit cost of 0.000012 per token.
  const report = await marginReport(stack.db, { from: new Date('2031-03-01T00:00:00Z'), to: new Date('2031-04-01T00:00:00Z'), subscriptionIds: [subscriptionId] });
  expect(report.subscriptions[0].combinations?.map((line) => [line.dimensionKey, line.revenue, line.cost, line.margin, line.lossMaking])).toEqual([
    ['model=small&direction=output', '1.50', '12.00', '-10.50', true], // 1,000,000 × 0.000012 = 12.00
    ['model=large&direction=cached', '0.50', '6.00', '-5.50', true], //     500,000 × 0.000012 =  6.00
    ['model=large&direction=input', '10.00', '12.00', '-2.00', true], // 1,000,000 × 0.000012 = 12.00
    ['model=mystery&direction=input', '2.00', '1.20', '0.80', false], //  100,000 × 0.000012 =  1.20
    ['model=large&direction=output', '6.00', '2.40', '3.60', false], //   200,000 × 0.000012 =  2.40
  ]);
});
