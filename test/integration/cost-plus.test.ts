/**
 * Cost tables, cost_plus prices and the margins report per combination (issue 14, point 2) through the real API,
 * workflow, activities and Postgres on a time-skipping Temporal server.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { createTestApiKey } from '../support/api-keys';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

const usage = (id: string, customer: string, timestamp: string, model: string, direction: string, tokens: number) => ({ id, customer, type: 'llm.usage', timestamp, properties: { model, direction, tokens } });

// What the provider charges us per token: the large model gets cheaper on Mar 15.
const MARCH_1 = { currency: 'USD', effective_from: '2033-03-01T00:00:00Z', costs: [{ match: {}, unit_cost: '0.000002' }, { match: { model: 'large' }, unit_cost: '0.00001' }, { match: { model: 'large', direction: 'output' }, unit_cost: '0.00003' }] };
const MARCH_15 = { currency: 'USD', effective_from: '2033-03-15T00:00:00Z', costs: [{ match: {}, unit_cost: '0.000002' }, { match: { model: 'large' }, unit_cost: '0.000008' }, { match: { model: 'large', direction: 'output' }, unit_cost: '0.000024' }] };

test('cost_plus bills each event at the cost of its date × (1 + markup); margins break down per combination and flag loss-makers', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'llm_tokens', name: 'LLM tokens', event_type: 'llm.usage', aggregation: 'sum', property: 'tokens', group_by: ['model', 'direction'] })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'peak_gpus', name: 'Peak GPUs', event_type: 'gpu.peak', aggregation: 'max', property: 'gpus' })).status).toBe(201);

  // Finance sets cost tables; an app key may not. Ambiguous or ill-fitting tables are refused, a table is never edited.
  const finance = (await createTestApiKey(stack.db, 'finance')).headers;
  const app = (await createTestApiKey(stack.db, 'app')).headers;
  expect((await stack.api.call('POST', '/v1/metrics/llm_tokens/cost-tables', MARCH_1, app)).status).toBe(403);
  expect(await stack.api.call('POST', '/v1/metrics/llm_tokens/cost-tables', MARCH_1, finance)).toMatchObject({ status: 201, json: { effective_from: '2033-03-01T00:00:00.000Z', costs: MARCH_1.costs } });
  expect((await stack.api.call('POST', '/v1/metrics/llm_tokens/cost-tables', MARCH_1, finance)).status).toBe(200);
  expect(await stack.api.call('POST', '/v1/metrics/llm_tokens/cost-tables', { ...MARCH_1, costs: [{ match: {}, unit_cost: '0.1' }] }, finance)).toMatchObject({ status: 409, json: { code: 'cost_table_exists' } });
  const ambiguous = { currency: 'USD', effective_from: '2033-03-10T00:00:00Z', costs: [{ match: { model: 'small' }, unit_cost: '0.000001' }, { match: { direction: 'cached' }, unit_cost: '0.0000005' }] };
  expect(await stack.api.call('POST', '/v1/metrics/llm_tokens/cost-tables', ambiguous, finance)).toMatchObject({ status: 422, json: { code: 'ambiguous_cost_table' } });
  expect(await stack.api.call('POST', '/v1/metrics/llm_tokens/cost-tables', { currency: 'USD', effective_from: '2033-03-10T00:00:00Z', costs: [{ match: { region: 'eu' }, unit_cost: '1' }] }, finance)).toMatchObject({ status: 422, json: { code: 'invalid_cost_table' } });
  expect(await stack.api.call('POST', '/v1/metrics/nope/cost-tables', MARCH_1, finance)).toMatchObject({ status: 404, json: { code: 'not_found' } });
  expect((await stack.api.call('POST', '/v1/metrics/llm_tokens/cost-tables', MARCH_15, finance)).status).toBe(201);
  expect((await stack.api.call('GET', '/v1/metrics/llm_tokens/cost-tables', undefined, finance)).json.data.map((table: { effective_from: string }) => table.effective_from)).toEqual(['2033-03-01T00:00:00.000Z', '2033-03-15T00:00:00.000Z']);

  // A max metric has no per-event share to cost: a cost_plus charge on it is refused.
  const onMax = await stack.api.call('POST', '/v1/plans', { code: 'gpu', name: 'GPU', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', charges: [{ metric_code: 'peak_gpus', price: { model: 'cost_plus', markup: '0.2' } }] });
  expect(onMax).toMatchObject({ status: 422, json: { code: 'charge_metric_mismatch' } });
  // Large models at cost + 25 %, small ones sold at a fixed price below their cost (a loss-maker), the rest at cost + 25 %.
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'llm-cost-plus', name: 'LLM at cost plus', currency: 'USD', billing_interval: 'P1M', flat_fee: '0',
    charges: [{
      metric_code: 'llm_tokens', display_name: 'Tokens',
      dimensions: { prices: [{ match: { model: 'large' }, price: { model: 'cost_plus', markup: '0.25' } }, { match: { model: 'small' }, price: { model: 'per_unit', unitPrice: '0.000001' } }], default_price: { model: 'cost_plus', markup: '0.25' } },
    }],
  });
  expect(plan.status).toBe(201);

  const acme = await stack.api.call('POST', '/v1/customers', { external_id: 'acme', name: 'Acme', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const bob = await stack.api.call('POST', '/v1/customers', { external_id: 'bob', name: 'Bob', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const acmeSub = await stack.api.call('POST', '/v1/subscriptions', { customer_id: acme.json.id, plan_code: 'llm-cost-plus', start_at: '2033-03-01T00:00:00Z' });
  const bobSub = await stack.api.call('POST', '/v1/subscriptions', { customer_id: bob.json.id, plan_code: 'llm-cost-plus', start_at: '2033-03-01T00:00:00Z' });
  expect([acmeSub.status, bobSub.status]).toEqual([201, 201]);

  // Timeline (UTC, 2033), acme:
  //   Mar 5..6   large/input 600,000   large/output 100,000   small/input 1,000,000   (table of Mar 1)
  //   Mar 20     large/input 400,000   large/output  50,000                           (table of Mar 15)
  //   Apr 1      INV  large/input  (600,000 × 0.00001 + 400,000 × 0.000008) = 9.20 × 1.25 = 11.50
  //                   large/output (100,000 × 0.00003 +  50,000 × 0.000024) = 4.20 × 1.25 =  5.25
  //                   small/input  1,000,000 × 0.000001 (per unit)                        =  1.00   -> 17.75
  // bob: small/input 2,000,000 on Mar 6 -> 2.00 billed, 4.00 cost.
  await skipTo('2033-03-07T00:00:00Z');
  const early = await stack.api.call('POST', '/v1/events', {
    events: [
      usage('a1', 'acme', '2033-03-05T00:00:00Z', 'large', 'input', 600_000),
      usage('a2', 'acme', '2033-03-05T00:00:00Z', 'large', 'output', 100_000),
      usage('a3', 'acme', '2033-03-06T00:00:00Z', 'small', 'input', 1_000_000),
      usage('b1', 'bob', '2033-03-06T00:00:00Z', 'small', 'input', 2_000_000),
    ],
  });
  expect(early.json).toMatchObject({ accepted: 4, rejected: 0 });
  await skipTo('2033-03-21T00:00:00Z');
  await stack.api.call('POST', '/v1/events', { events: [usage('a4', 'acme', '2033-03-20T00:00:00Z', 'large', 'input', 400_000), usage('a5', 'acme', '2033-03-20T00:00:00Z', 'large', 'output', 50_000)] });

  // The preview costs each event at its own date, as the invoice will.
  const live = await stack.api.call('GET', `/v1/subscriptions/${acmeSub.json.id}/usage`);
  expect(live.json.projected.lines.map((line: { description: string; amount: string }) => [line.description, line.amount])).toEqual([
    ['Tokens (model=large, direction=input)', '11.50'],
    ['Tokens (model=large, direction=output)', '5.25'],
    ['Tokens (model=small, direction=input)', '1.00'],
  ]);

  await skipTo('2033-04-02T00:00:00Z');
  const april = await stack.db<InvoiceRow>('invoices').where({ subscription_id: acmeSub.json.id, kind: 'period' }).andWhere('period_start', '2033-04-01T00:00:00Z').first();
  const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: april!.id, kind: 'usage' }).orderBy('position');
  expect(lines.map((line) => [line.description, line.amount])).toEqual([
    ['Tokens (model=large, direction=input)', '11.500000000000'],
    ['Tokens (model=large, direction=output)', '5.250000000000'],
    ['Tokens (model=small, direction=input)', '1.000000000000'],
  ]);
  expect(lines[0].breakdown).toMatchObject({
    model: 'cost_plus', markup: '0.25', cost: '9.2',
    segments: [
      { effectiveFrom: '2033-03-01T00:00:00.000Z', quantity: '600000', unitCost: '0.00001' },
      { effectiveFrom: '2033-03-15T00:00:00.000Z', quantity: '400000', unitCost: '0.000008' },
    ],
  });

  // Margins for March. acme: cost 6.00 + 3.20 + 3.00 + 1.20 + 2.00 = 15.40 against 17.75; bob: 4.00 against 2.00.
  const report = await stack.api.call('GET', '/v1/reports/margins?from=2033-03-01T00:00:00Z&to=2033-04-01T00:00:00Z', undefined, finance);
  expect(report.status).toBe(200);
  const row = (external: string) => report.json.data.find((entry: { customer: { external_id: string } }) => entry.customer.external_id === external);
  expect(row('bob')).toMatchObject({ revenue: '2.00', cost: '4.00', margin: '-2.00', loss_making: true });
  expect(row('acme')).toMatchObject({ revenue: '17.75', cost: '15.40', margin: '2.35', loss_making: false });
  expect(row('acme').cost_breakdown[0].cost_segments).toEqual([
    { effective_from: '2033-03-01T00:00:00.000Z', quantity: '1000000', unit_cost: '0.000002' },
    { effective_from: '2033-03-01T00:00:00.000Z', quantity: '600000', unit_cost: '0.00001' },
    { effective_from: '2033-03-01T00:00:00.000Z', quantity: '100000', unit_cost: '0.00003' },
    { effective_from: '2033-03-15T00:00:00.000Z', quantity: '400000', unit_cost: '0.000008' },
    { effective_from: '2033-03-15T00:00:00.000Z', quantity: '50000', unit_cost: '0.000024' },
  ]);
  expect(row('acme').combinations.map((line: Record<string, unknown>) => [line.dimension_key, line.revenue, line.cost, line.margin, line.loss_making])).toEqual([
    ['model=small&direction=input', '1.00', '2.00', '-1.00', true],
    ['model=large&direction=output', '5.25', '4.20', '1.05', false],
    ['model=large&direction=input', '11.50', '9.20', '2.30', false],
  ]);
  expect(report.json.loss_making).toEqual({
    customers: [{ customer: { id: bob.json.id, external_id: 'bob' }, subscription_ids: [bobSub.json.id], currency: 'USD', revenue: '2.00', cost: '4.00', margin: '-2.00', margin_percent: '-100.00', loss_making: true }],
    combinations: [{ currency: 'USD', metric_code: 'llm_tokens', dimension_key: 'model=small&direction=input', quantity: '3000000', revenue: '3.00', cost: '6.00', margin: '-3.00', subscriptions: 2, loss_making: true }],
  });

  for (const id of [acmeSub.json.id, bobSub.json.id]) await stack.env.client.workflow.getHandle(`subscription:${id}`).terminate('test done');
});

const skipTo = (instant: string): Promise<void> => stack.skipTo(instant);
