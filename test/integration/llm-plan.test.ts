/**
 * A three-period LLM plan on the time-skipping Temporal server (issue 14, points 1 and 5): three models ×
 * input/output tokens, cached input at a discount (a wildcard, with a more specific price for the large model),
 * a default price for unknown models, and a plain per-request charge beside it. Every invoice is checked line by
 * line, and the usage preview, the invoice, the re-rating diff and the margins report are checked to show the same
 * per-combination numbers. Two more plans without a default show both policies for usage nothing prices: one
 * rejects it at ingestion (`no_matching_price`), the other lists it on the invoice at 0.00.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { marginReport } from '../../store/margins';
import { cancelSubscriptionUpdate } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';
import { settledRerate } from '../support/rerate';
import type { Json } from '../support/http';

const stack = useApiStack();

const skipTo = (instant: string): Promise<void> => stack.skipTo(instant);

const tokens = (id: string, customer: string, timestamp: string, model: string, direction: string, count: number) => ({
  id,
  customer,
  type: 'llm.usage',
  timestamp,
  properties: { model, direction, tokens: count },
});

const perToken = (unitPrice: string) => ({ model: 'per_unit', unitPrice });

/** Three models × input/output; cached input of any model at 0.000001 with 100,000 free per combination, large's at 0.000002. */
const LLM_PRICES = [
  { match: { model: 'large', direction: 'input' }, price: perToken('0.00001') },
  { match: { model: 'large', direction: 'output' }, price: perToken('0.00003') },
  { match: { model: 'medium', direction: 'input' }, price: perToken('0.000003') },
  { match: { model: 'medium', direction: 'output' }, price: perToken('0.000015') },
  { match: { model: 'small', direction: 'input' }, price: perToken('0.0000005') },
  { match: { model: 'small', direction: 'output' }, price: perToken('0.0000015') },
  { match: { direction: 'cached' }, price: perToken('0.000001'), included_units: '100000' },
  { match: { model: 'large', direction: 'cached' }, price: perToken('0.000002') },
];

/** Stored amounts have 12 decimals; the invoice shows them in cents. */
const cents = (amount: string): string => Number(amount).toFixed(2);

type Line = { description: string; amount: string; dimensionKey: string | null };

async function invoiceLines(invoiceId: string): Promise<(string | null)[][]> {
  const rows = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoiceId }).orderBy('position');
  return rows.map((row) => [row.kind, row.description, row.quantity.replace(/\.0+$/, ''), cents(row.amount), (row.breakdown.dimensionKey as string | undefined) ?? null]);
}

/** Usage lines by combination (plain lines by metric code): what each place shows for one period. */
function byCombination(lines: readonly Line[]): Record<string, string> {
  return Object.fromEntries(lines.map((line) => [line.dimensionKey ?? line.description, line.amount]));
}

test('a three-period LLM plan: one line per combination under its charge, and the preview, invoice, re-rating diff and margins agree', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'llm_tokens', name: 'LLM tokens', event_type: 'llm.usage', aggregation: 'sum', property: 'tokens', group_by: ['model', 'direction'], unit_cost: '0.000004' })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'llm_requests', name: 'LLM requests', event_type: 'llm.usage', aggregation: 'count' })).status).toBe(201);

  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'llm', name: 'LLM', currency: 'USD', billing_interval: 'P1M', flat_fee: '20.00',
    charges: [
      { metric_code: 'llm_tokens', display_name: 'Tokens', dimensions: { prices: LLM_PRICES, default_price: perToken('0.00002') } },
      { metric_code: 'llm_requests', display_name: 'Requests', price: perToken('0.01') },
    ],
  });
  expect(plan.status).toBe(201);
  // No default price: what no match fits is refused at ingestion (strict) or listed at 0.00 (listed).
  const noDefault = (code: string, unmatched: string) => ({
    code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '0',
    charges: [{ metric_code: 'llm_tokens', display_name: 'Tokens', dimensions: { prices: LLM_PRICES, unmatched } }],
  });
  expect((await stack.api.call('POST', '/v1/plans', noDefault('llm-strict', 'reject'))).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/plans', noDefault('llm-listed', 'list'))).status).toBe(201);

  const subscribe = async (externalId: string, planCode: string): Promise<string> => {
    const customer = await stack.api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
    const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: planCode, start_at: '2031-03-01T00:00:00Z' });
    expect(subscription.status).toBe(201);
    return subscription.json.id;
  };
  const acme = await subscribe('acme', 'llm');
  const strict = await subscribe('strict', 'llm-strict');
  const listed = await subscribe('listed', 'llm-listed');

  // Timeline (UTC, 2031); the plan's usage is billed in arrears on the next period's invoice.
  //
  //   P0 [Mar 1, Apr 1)   acme (price per token; cached: 100,000 free per combination except large's)
  //     large/input    700,000 + 500,000 = 1,200,000 × 0.00001            = 12.00
  //     large/output   250,000 × 0.00003                                  =  7.50
  //     large/cached   400,000 × 0.000002 (the specific match beats the wildcard)   =  0.80
  //     medium/cached  (600,000 - 100,000 included) × 0.000001 (wildcard)  =  0.50
  //     medium/input   2,000,000 × 0.000003                                =  6.00
  //     mystery/input  150,000 × 0.00002 (default price)                   =  3.00
  //     small/output   1,000,000 × 0.0000015                               =  1.50   tokens 31.30
  //     Requests       8 events × 0.01                                     =  0.08   usage  31.38
  //   Apr 1            INV = 20.00 April fee in advance + 31.38                         = 51.38
  //   Apr 5            late March events: large/output +50,000, small/cached 250,000 (listed, not billed)
  //                    re-rating with late usage: large/output 300,000 × 0.00003 = 9.00 (+1.50),
  //                    small/cached (250,000 - 100,000) × 0.000001 = 0.15 (+0.15), Requests 10 × 0.01 = 0.10
  //                    (+0.02): adjustment invoice 1.67
  //   P1 [Apr 1, May 1)  (sent on Apr 5, dated Apr 2-4)
  //     large/output   100,000 × 0.00003                                  =  3.00
  //     medium/output  40,000 × 0.000015                                  =  0.60
  //     mystery2/output 10,001 × 0.00002 = 0.20002                        =  0.20
  //     small/cached   50,000, all of it within the 100,000 included      =  0.00
  //     small/input    333,333 × 0.0000005 = 0.1666665 (half-up)          =  0.17
  //     Requests       5 × 0.01                                           =  0.05   usage 4.02
  //   May 1            INV = 20.00 + 4.02                                                = 24.02
  //   P2 [May 1, Jun 1)  cancel at period end
  //     large/input    500,000 × 0.00001                                  =  5.00
  //     medium/cached  (100,001 - 100,000) × 0.000001 = 0.000001          =  0.00
  //     small/output   2,000,000 × 0.0000015                              =  3.00
  //     Requests       3 × 0.01                                           =  0.03   usage 8.03
  //   Jun 1            closing INV = 8.03 (no fee beyond the end)
  await skipTo('2031-03-15T00:00:00Z');
  const march = await stack.api.call('POST', '/v1/events', {
    events: [
      tokens('m1', 'acme', '2031-03-02T00:00:00Z', 'large', 'input', 700_000),
      tokens('m2', 'acme', '2031-03-03T00:00:00Z', 'large', 'input', 500_000),
      tokens('m3', 'acme', '2031-03-04T00:00:00Z', 'large', 'output', 250_000),
      tokens('m4', 'acme', '2031-03-05T00:00:00Z', 'large', 'cached', 400_000),
      tokens('m5', 'acme', '2031-03-06T00:00:00Z', 'medium', 'input', 2_000_000),
      tokens('m6', 'acme', '2031-03-07T00:00:00Z', 'medium', 'cached', 600_000),
      tokens('m7', 'acme', '2031-03-08T00:00:00Z', 'small', 'output', 1_000_000),
      tokens('m8', 'acme', '2031-03-09T00:00:00Z', 'mystery', 'input', 150_000),
    ],
  });
  expect(march.json).toMatchObject({ accepted: 8, rejected: 0 });

  // Usage no price matches: refused at ingestion under "reject" (the rest of the batch is stored), listed under "list".
  const strictBatch = await stack.api.call('POST', '/v1/events', {
    events: [
      tokens('s1', 'strict', '2031-03-10T00:00:00Z', 'large', 'output', 1_000),
      tokens('s2', 'strict', '2031-03-10T00:00:00Z', 'mystery', 'output', 1_000),
      tokens('s3', 'strict', '2031-03-10T00:00:00Z', 'medium', 'cached', 1_000),
    ],
  });
  expect(strictBatch.json).toMatchObject({ accepted: 2, rejected: 1, errors: [{ index: 1, code: 'no_matching_price' }] });
  expect((await stack.db('usage_events').whereIn('event_id', ['s1', 's2', 's3']).orderBy('event_id').select('event_id')).map((row) => row.event_id)).toEqual(['s1', 's3']);
  const listedBatch = await stack.api.call('POST', '/v1/events', {
    events: [tokens('l1', 'listed', '2031-03-10T00:00:00Z', 'large', 'input', 100_000), tokens('l2', 'listed', '2031-03-10T00:00:00Z', 'mystery', 'input', 5_000)],
  });
  expect(listedBatch.json).toMatchObject({ accepted: 2, rejected: 0 });

  // A prepaid wallet's pending usage (shown on the customer usage page) rates the open period the invoice's way:
  // large/output 100,000 × 0.00003 = 3.00, medium/cached (150,000 - 100,000) × 0.000001 = 0.05, Requests 2 × 0.01.
  const walletCustomer = await stack.api.call('POST', '/v1/customers', { external_id: 'walleted', name: 'walleted', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  expect((await stack.api.call('POST', '/v1/subscriptions', { customer_id: walletCustomer.json.id, plan_code: 'llm', start_at: '2031-03-01T00:00:00Z' })).status).toBe(201);
  expect((await stack.api.call('PUT', `/v1/customers/${walletCustomer.json.id}/wallet`, { overdraft_limit: '1000' })).status).toBe(200);
  await stack.api.call('POST', '/v1/events', {
    events: [tokens('w1', 'walleted', '2031-03-10T00:00:00Z', 'large', 'output', 100_000), tokens('w2', 'walleted', '2031-03-10T00:00:00Z', 'medium', 'cached', 150_000)],
  });
  // (Pending usage counts once the subscription's workflow has recorded its current period.)
  const pending = await eventually(async () => {
    const wallet = await stack.api.call('GET', `/v1/customers/${walletCustomer.json.id}/wallet`);
    return wallet.json.pending_usage !== '0.00' ? wallet.json.pending_usage : undefined;
  }, 'the wallet to see the open period');
  expect(pending).toBe('3.07'); // before the fix: 5.02 (all 250,000 tokens at the charge's one representative price)

  // The preview just before the period closes: the same combinations and amounts the invoice will show.
  await skipTo('2031-03-31T12:00:00Z');
  const marchPreview = await stack.api.call('GET', `/v1/subscriptions/${acme}/usage`);
  const marchPreviewLines: Line[] = marchPreview.json.projected.lines.map((line: Json) => ({ description: line.description, amount: line.amount, dimensionKey: line.dimensionKey ?? null }));
  // Usage per metric (the customer usage page's table): a metric's amount is the sum of its combinations' lines.
  const tokensUsage = marchPreview.json.usage.find((metric: Json) => metric.metric_code === 'llm_tokens');
  expect(tokensUsage.amount).toBe('31.30');
  expect(tokensUsage.groups).toHaveLength(7);
  const groupAmounts = Object.fromEntries(tokensUsage.groups.map((group: Json) => [`${group.dimensions.model}/${group.dimensions.direction}`, group.amount]));
  expect(groupAmounts).toEqual({ 'large/cached': '0.80', 'large/input': '12.00', 'large/output': '7.50', 'medium/cached': '0.50', 'medium/input': '6.00', 'mystery/input': '3.00', 'small/output': '1.50' });
  expect(marchPreview.json.projected.usage_total).toBe('31.38');
  const listedPreview = await stack.api.call('GET', `/v1/subscriptions/${listed}/usage`);
  expect(listedPreview.json.projected.unpriced).toEqual([
    { metricCode: 'llm_tokens', dimensions: { model: 'mystery', direction: 'input' }, dimensionKey: 'model=mystery&direction=input', quantity: '5000' },
  ]);

  await skipTo('2031-04-05T00:00:00Z');
  const late = await stack.api.call('POST', '/v1/events', {
    events: [tokens('late1', 'acme', '2031-03-20T00:00:00Z', 'large', 'output', 50_000), tokens('late2', 'acme', '2031-03-21T00:00:00Z', 'small', 'cached', 250_000)],
  });
  expect(late.json).toMatchObject({ accepted: 2, rejected: 0 });
  const aprilPeriodInvoice = async (subscriptionId: string): Promise<InvoiceRow> =>
    (await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).where('period_start', new Date('2031-04-01T00:00:00Z')).first())!;

  const april = await aprilPeriodInvoice(acme);
  expect(cents(april.total)).toBe('51.38');
  const aprilLines = await invoiceLines(april.id);
  expect(aprilLines).toEqual([
    ['flat_fee', 'LLM subscription fee', '1', '20.00', null],
    ['usage', 'Tokens (model=large, direction=cached)', '400000', '0.80', 'model=large&direction=cached'],
    ['usage', 'Tokens (model=large, direction=input)', '1200000', '12.00', 'model=large&direction=input'],
    ['usage', 'Tokens (model=large, direction=output)', '250000', '7.50', 'model=large&direction=output'],
    ['usage', 'Tokens (model=medium, direction=cached)', '600000', '0.50', 'model=medium&direction=cached'],
    ['usage', 'Tokens (model=medium, direction=input)', '2000000', '6.00', 'model=medium&direction=input'],
    ['usage', 'Tokens (model=mystery, direction=input)', '150000', '3.00', 'model=mystery&direction=input'],
    ['usage', 'Tokens (model=small, direction=output)', '1000000', '1.50', 'model=small&direction=output'],
    ['usage', 'Requests', '8', '0.08', null],
  ]);
  // Each combination's line keeps its own breakdown: the wildcard's included units, where its price came from.
  const aprilRows = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: april.id }).orderBy('position');
  expect(aprilRows[4].breakdown).toMatchObject({ model: 'per_unit', includedUnits: '100000', billableQuantity: '500000', priceSource: { kind: 'match', index: 6, match: { direction: 'cached' } } });
  expect(aprilRows[1].breakdown).toMatchObject({ includedUnits: '0', priceSource: { kind: 'match', index: 7 } });
  expect(aprilRows[6].breakdown).toMatchObject({ priceSource: { kind: 'default' } });
  // Preview = invoice, combination by combination.
  const invoiceByCombination = byCombination(aprilRows.filter((row) => row.kind === 'usage').map((row) => ({ description: row.description, amount: cents(row.amount), dimensionKey: (row.breakdown.dimensionKey as string | undefined) ?? null })));
  expect(byCombination(marchPreviewLines.filter((line) => line.dimensionKey !== null || line.description === 'Requests'))).toEqual(invoiceByCombination);

  // The listing plan shows the unpriced combination at 0.00, visibly, instead of dropping it.
  expect(await invoiceLines((await aprilPeriodInvoice(listed)).id)).toEqual([
    ['usage', 'Tokens (model=large, direction=input)', '100000', '1.00', 'model=large&direction=input'],
    ['usage', 'llm_tokens (model=mystery, direction=input): no price matches, not billed', '5000', '0.00', 'model=mystery&direction=input'],
  ]);
  expect(await invoiceLines((await aprilPeriodInvoice(strict)).id)).toEqual([
    ['usage', 'Tokens (model=large, direction=output)', '1000', '0.03', 'model=large&direction=output'], // 1,000 × 0.00003
    ['usage', 'Tokens (model=medium, direction=cached)', '1000', '0.00', 'model=medium&direction=cached'], // within the 100,000 included
  ]);

  // Re-rating March with the late events: the diff is per combination, and only where something changed.
  const rerate = await stack.api.call('POST', `/v1/invoices/${april.id}/rerate`, { reason: 'late March events', include_late_usage: true });
  expect(rerate.status).toBe(202);
  expect(await settledRerate(stack.env.connection, rerate.json.id, (state) => state.status === 'proposed', { timeoutMs: 30_000, intervalMs: 100 })).toMatchObject({ outcome: 'adjustment', total: '1.67' });
  const proposal = (await stack.api.call('GET', `/v1/rerates/${rerate.json.id}`)).json.proposal;
  const diff: Line[] = proposal.lines.map((line: Json) => ({ description: line.description, amount: line.amount, dimensionKey: line.breakdown.dimensionKey ?? null }));
  expect(byCombination(diff)).toEqual({
    'model=large&direction=output': '1.50', //  9.00 - 7.50
    'model=small&direction=cached': '0.15', //  0.15 - 0 (a combination the invoice did not have)
    'Requests (correction)': '0.02', //         0.10 - 0.08
  });
  // Invoice + diff = the period rated again with the late events, for every combination.
  expect(diff.find((line) => line.dimensionKey === 'model=large&direction=output')!.description).toBe('Tokens (model=large, direction=output) (correction)');
  await stack.api.call('POST', `/v1/rerates/${rerate.json.id}/approve`, { reason: 'checked' });
  const done = await settledRerate(stack.env.connection, rerate.json.id, (state) => state.status === 'finalized', { timeoutMs: 30_000, intervalMs: 100 });
  const adjustment = (await stack.db<InvoiceRow>('invoices').where({ id: done.resultInvoiceId! }).first())!;
  expect([adjustment.kind, cents(adjustment.total)]).toEqual(['adjustment', '1.67']);

  // The margins report: March revenue per combination is the invoice line plus its correction (cost 0.000004 a token).
  const report = await marginReport(stack.db, { from: new Date('2031-03-01T00:00:00Z'), to: new Date('2031-04-01T00:00:00Z'), subscriptionIds: [acme] });
  const revenue = Object.fromEntries((report.subscriptions[0].combinations ?? []).map((line) => [line.dimensionKey, line.revenue]));
  expect(revenue).toEqual({
    'model=large&direction=cached': '0.80',
    'model=large&direction=input': '12.00',
    'model=large&direction=output': '9.00', // 7.50 + 1.50
    'model=medium&direction=cached': '0.50',
    'model=medium&direction=input': '6.00',
    'model=mystery&direction=input': '3.00',
    'model=small&direction=output': '1.50',
    'model=small&direction=cached': '0.15',
  });

  const aprilEvents = await stack.api.call('POST', '/v1/events', {
    events: [
      tokens('a1', 'acme', '2031-04-02T00:00:00Z', 'large', 'output', 100_000),
      tokens('a2', 'acme', '2031-04-02T06:00:00Z', 'medium', 'output', 40_000),
      tokens('a3', 'acme', '2031-04-03T00:00:00Z', 'small', 'input', 333_333),
      tokens('a4', 'acme', '2031-04-03T06:00:00Z', 'small', 'cached', 50_000),
      tokens('a5', 'acme', '2031-04-04T00:00:00Z', 'mystery2', 'output', 10_001),
    ],
  });
  expect(aprilEvents.json).toMatchObject({ accepted: 5, rejected: 0 });
  await skipTo('2031-04-30T12:00:00Z');
  const aprilPreview = await stack.api.call('GET', `/v1/subscriptions/${acme}/usage`);
  await skipTo('2031-05-10T00:00:00Z');
  const mayEvents = await stack.api.call('POST', '/v1/events', {
    events: [
      tokens('y1', 'acme', '2031-05-02T00:00:00Z', 'large', 'input', 500_000),
      tokens('y2', 'acme', '2031-05-03T00:00:00Z', 'medium', 'cached', 100_001),
      tokens('y3', 'acme', '2031-05-04T00:00:00Z', 'small', 'output', 2_000_000),
    ],
  });
  expect(mayEvents.json).toMatchObject({ accepted: 3, rejected: 0 });
  const handle = stack.env.client.workflow.getHandle(`subscription:${acme}`);
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'test', requestedBy: 'test' }] });
  await handle.result();

  const invoices = await stack.db<InvoiceRow>('invoices').where({ subscription_id: acme }).orderBy(['period_start', 'created_at']);
  expect(invoices.map((invoice) => [invoice.kind, invoice.period_start.toISOString().slice(0, 10), cents(invoice.total)])).toEqual([
    ['period', '2031-03-01', '20.00'],
    ['adjustment', '2031-03-01', '1.67'],
    ['period', '2031-04-01', '51.38'],
    ['period', '2031-05-01', '24.02'],
    ['closing', '2031-05-01', '8.03'],
  ]);
  expect(await invoiceLines(invoices[0].id)).toEqual([['flat_fee', 'LLM subscription fee', '1', '20.00', null]]);
  const may = await invoiceLines(invoices[3].id);
  expect(may).toEqual([
    ['flat_fee', 'LLM subscription fee', '1', '20.00', null],
    ['usage', 'Tokens (model=large, direction=output)', '100000', '3.00', 'model=large&direction=output'],
    ['usage', 'Tokens (model=medium, direction=output)', '40000', '0.60', 'model=medium&direction=output'],
    ['usage', 'Tokens (model=mystery2, direction=output)', '10001', '0.20', 'model=mystery2&direction=output'],
    ['usage', 'Tokens (model=small, direction=cached)', '50000', '0.00', 'model=small&direction=cached'],
    ['usage', 'Tokens (model=small, direction=input)', '333333', '0.17', 'model=small&direction=input'],
    ['usage', 'Requests', '5', '0.05', null],
  ]);
  const aprilPreviewLines = aprilPreview.json.projected.lines.map((line: Json) => [line.description, line.amount]);
  expect(aprilPreviewLines).toEqual(may.slice(1).map((line) => [line[1], line[3]]));
  expect(await invoiceLines(invoices[4].id)).toEqual([
    ['usage', 'Tokens (model=large, direction=input)', '500000', '5.00', 'model=large&direction=input'],
    ['usage', 'Tokens (model=medium, direction=cached)', '100001', '0.00', 'model=medium&direction=cached'],
    ['usage', 'Tokens (model=small, direction=output)', '2000000', '3.00', 'model=small&direction=output'],
    ['usage', 'Requests', '3', '0.03', null],
  ]);
});
