/**
 * Cost tables and the cost_plus price model (issue 14, point 2), worked by hand to the minor unit.
 * The store splits usage by the table in effect at each event's time (store/cost-tables.ts); here the splits are
 * written out, so every amount can be redone on paper.
 */
import { CostTableIndex, costSegments, validateCostTable, type CostTable } from '../../domain/cost-tables';
import { rateDimensionalUsage, type DimensionalCharge } from '../../domain/dimensions';
import { rateUsage, RatingError, validateCharge } from '../../domain/rating';
import { validatePriceModel } from '../../domain/price-models';
import { chargeMetricMismatches } from '../../domain/charge-metric-fit';
import { breakdownRows } from '../../api/documents/invoice-document';

const GROUP_BY = ['model', 'direction'];
// Timeline (UTC, March 2033): the provider cuts the large model's prices on Mar 15.
//   Mar 1   table 1: large 0.00001, large/output 0.00003, everything else 0.000002
//   Mar 15  table 2: large 0.000008, large/output 0.000024, everything else 0.000002
const TABLES: CostTable[] = [
  { currency: 'USD', effectiveFrom: '2033-03-15T00:00:00.000Z', entries: [{ match: { model: 'large' }, unitCost: '0.000008' }, { match: { model: 'large', direction: 'output' }, unitCost: '0.000024' }, { match: {}, unitCost: '0.000002' }] },
  { currency: 'USD', effectiveFrom: '2033-03-01T00:00:00.000Z', entries: [{ match: { model: 'large' }, unitCost: '0.00001' }, { match: { model: 'large', direction: 'output' }, unitCost: '0.00003' }, { match: {}, unitCost: '0.000002' }] },
];
const MAR1 = '2033-03-01T00:00:00.000Z';
const MAR15 = '2033-03-15T00:00:00.000Z';

describe('cost tables', () => {
  const index = new CostTableIndex(TABLES, GROUP_BY);

  it('costs an event by the table in effect at its own time, most specific match first, {} as the wildcard', () => {
    expect(index.tableAt('2033-03-14T23:59:59.999Z')?.effectiveFrom).toBe(MAR1);
    expect(index.tableAt(MAR15)?.effectiveFrom).toBe(MAR15);
    expect(index.tableAt('2033-02-28T23:59:59Z')).toBeUndefined();
    expect(index.unitCost(MAR1, { model: 'large', direction: 'input' })).toBe('0.00001');
    expect(index.unitCost(MAR1, { model: 'large', direction: 'output' })).toBe('0.00003');
    expect(index.unitCost(MAR15, { model: 'large', direction: 'output' })).toBe('0.000024');
    expect(index.unitCost(MAR15, { model: 'small', direction: 'cached' })).toBe('0.000002');
    expect(index.unitCost(null, { model: 'large' })).toBeNull();
  });

  it('leaves usage nothing matches uncosted (null), never at an invented price', () => {
    const narrow = new CostTableIndex([{ currency: 'USD', effectiveFrom: MAR1, entries: [{ match: { model: 'large' }, unitCost: '0.00001' }] }], GROUP_BY);
    expect(narrow.unitCost(MAR1, { model: 'small', direction: 'input' })).toBeNull();
  });

  it('refuses an ambiguous table like an ambiguous charge catalog, and accepts it once the tie is settled', () => {
    const tie: CostTable = { currency: 'USD', effectiveFrom: MAR1, entries: [{ match: { model: 'small' }, unitCost: '0.000001' }, { match: { direction: 'cached' }, unitCost: '0.0000005' }] };
    expect(validateCostTable(tie, GROUP_BY)).toEqual([expect.stringMatching(/^ambiguous: costs\[0\] and costs\[1\] both match model=small, direction=cached equally/)]);
    expect(validateCostTable({ ...tie, entries: [...tie.entries, { match: { model: 'small', direction: 'cached' }, unitCost: '0.0000002' }] }, GROUP_BY)).toEqual([]);
  });

  it('refuses an unknown currency, unknown dimensions, repeated matches, negative or non-decimal costs and a bad instant', () => {
    const problems = validateCostTable(
      { currency: 'ZZZ', effectiveFrom: 'soon', entries: [{ match: { region: 'eu', model: 'b' }, unitCost: '0.1' }, { match: { model: 'a' }, unitCost: '-1' }, { match: { model: 'a' }, unitCost: '1' }, { match: {}, unitCost: '1e-5' }] },
      GROUP_BY,
    );
    expect(problems).toEqual([
      'currency must be a supported ISO 4217 code',
      'effective_from must be an RFC 3339 instant',
      "costs[0].match.region is not one of the metric's group_by (model, direction)",
      'costs[1].unit_cost must be a non-negative decimal string',
      'costs[2].match repeats costs[1].match',
      'costs[3].unit_cost must be a non-negative decimal string',
    ]);
  });
});

describe('cost_plus price model', () => {
  const index = new CostTableIndex(TABLES, GROUP_BY);

  it('bills cost × (1 + markup) per combination, each share at the table of its time (a cost change mid-period)', () => {
    // March usage, split at Mar 15 (as the store counts it):
    //   large/input   600,000 × 0.00001  = 6.00   + 400,000 × 0.000008 = 3.20  -> cost 9.20 × 1.25 = 11.50
    //   large/output  100,000 × 0.00003  = 3.00   +  50,000 × 0.000024 = 1.20  -> cost 4.20 × 1.25 =  5.25
    //   small/input 1,000,000 × 0.000002 = 2.00 (all before Mar 15)           -> cost 2.00 × 1.25 =  2.50
    //   medium/input 70,000 tokens: a per-unit price 0.00004 (not cost-plus)  ->                      2.80
    //                                                                                       total  22.05
    const group = (model: string, direction: string, shares: [string | null, string][]) => {
      const dimensions = { model, direction };
      const quantity = shares.reduce((total, [, q]) => total + Number(q), 0).toString();
      return { dimensions, quantity, costs: costSegments(index, dimensions, shares.map(([effectiveFrom, q]) => ({ effectiveFrom, quantity: q }))) };
    };
    const charge: DimensionalCharge = {
      metricCode: 'llm_tokens',
      displayName: 'Tokens',
      price: { model: 'cost_plus', markup: '0.25' },
      dimensions: {
        groupBy: GROUP_BY,
        unmatched: 'list',
        prices: [{ match: { model: 'medium' }, price: { model: 'per_unit', unitPrice: '0.00004' } }],
        defaultPrice: { model: 'cost_plus', markup: '0.25' },
      },
    };
    const rated = rateDimensionalUsage({
      currency: 'USD',
      charges: [charge],
      usage: [
        {
          metricCode: 'llm_tokens',
          quantity: '2220000',
          groups: [
            group('large', 'input', [[MAR1, '600000'], [MAR15, '400000']]),
            group('large', 'output', [[MAR1, '100000'], [MAR15, '50000']]),
            group('small', 'input', [[MAR1, '1000000']]),
            { dimensions: { model: 'medium', direction: 'input' }, quantity: '70000' },
          ],
        },
      ],
    });
    expect(rated.lines.map((line) => [line.description, line.amount])).toEqual([
      ['Tokens (model=large, direction=input)', '11.50'],
      ['Tokens (model=large, direction=output)', '5.25'],
      ['Tokens (model=medium, direction=input)', '2.80'],
      ['Tokens (model=small, direction=input)', '2.50'],
    ]);
    expect(rated.subtotal).toBe('22.05');
    expect(rated.lines[0].breakdown).toMatchObject({
      model: 'cost_plus',
      markup: '0.25',
      cost: '9.2',
      uncostedQuantity: '0',
      segments: [
        { effectiveFrom: MAR1, quantity: '600000', unitCost: '0.00001', cost: '6' },
        { effectiveFrom: MAR15, quantity: '400000', unitCost: '0.000008', cost: '3.2' },
      ],
    });
  });

  it('rounds once per line, half-up, as every line: 0.02 × 1.25 = 0.025 bills 0.03; 0.271 × 1.3 = 0.3523 bills 0.35', () => {
    const images = (costs: { effectiveFrom: string; quantity: string; unitCost: string }[], markup: string) =>
      rateUsage({
        currency: 'USD',
        charges: [{ metricCode: 'images', price: { model: 'cost_plus', markup } }],
        usage: [{ metricCode: 'images', quantity: String(costs.reduce((total, c) => total + Number(c.quantity), 0)), costs }],
      }).lines[0].amount;
    expect(images([{ effectiveFrom: MAR1, quantity: '1', unitCost: '0.02' }], '0.25')).toBe('0.03');
    // 4 images at 0.037 before the change, 3 at 0.041 after: 0.148 + 0.123 = 0.271.
    expect(images([{ effectiveFrom: MAR1, quantity: '4', unitCost: '0.037' }, { effectiveFrom: MAR15, quantity: '3', unitCost: '0.041' }], '0.3')).toBe('0.35');
    // JPY has no minor digits: 1,000 units × 0.45 = 450 × 1.1 = 495.
    expect(
      rateUsage({ currency: 'JPY', charges: [{ metricCode: 'images', price: { model: 'cost_plus', markup: '0.1' } }], usage: [{ metricCode: 'images', quantity: '1000', costs: [{ effectiveFrom: MAR1, quantity: '1000', unitCost: '0.45' }] }] }).lines[0].amount,
    ).toBe('495');
  });

  it('bills usage no table costs at 0 and shows it as uncosted; a split that loses units is refused', () => {
    const line = rateUsage({
      currency: 'USD',
      charges: [{ metricCode: 'images', price: { model: 'cost_plus', markup: '0.5' } }],
      usage: [{ metricCode: 'images', quantity: '10', costs: [{ effectiveFrom: null, quantity: '4', unitCost: null }, { effectiveFrom: MAR1, quantity: '6', unitCost: '0.10' }] }],
    }).lines[0];
    expect([line.amount, line.breakdown]).toEqual(['0.90', expect.objectContaining({ cost: '0.6', uncostedQuantity: '4' })]);
    // A metric with no cost table at all: everything uncosted, billed 0, the invoice still closes.
    const none = rateUsage({ currency: 'USD', charges: [{ metricCode: 'images', price: { model: 'cost_plus', markup: '0.5' } }], usage: [{ metricCode: 'images', quantity: '3' }] }).lines[0];
    expect([none.amount, (none.breakdown as { uncostedQuantity: string }).uncostedQuantity]).toEqual(['0.00', '3']);
    expect(() =>
      rateUsage({ currency: 'USD', charges: [{ metricCode: 'images', price: { model: 'cost_plus', markup: '0.5' } }], usage: [{ metricCode: 'images', quantity: '10', costs: [{ effectiveFrom: MAR1, quantity: '6', unitCost: '0.10' }] }] }),
    ).toThrow(RatingError);
  });

  it('validates the markup and refuses included units and metrics whose usage has no per-event share', () => {
    expect(validatePriceModel({ model: 'cost_plus', markup: '0.25' })).toEqual([]);
    expect(validatePriceModel({ model: 'cost_plus', markup: '-0.1' })).toEqual(['markup must not be negative']);
    expect(validatePriceModel({ model: 'cost_plus', markup: 25 as unknown as string })).toEqual(['markup must be a decimal string']);
    expect(validateCharge({ metricCode: 'x', price: { model: 'cost_plus', markup: '0' }, includedUnits: '10' })).toEqual(['includedUnits does not apply to cost_plus pricing']);
    const metric = (aggregation: 'max' | 'sum', allowNegative = false) => new Map([['m', { code: 'm', aggregation, property: 'v', allowNegative }]]);
    expect(chargeMetricMismatches([{ metricCode: 'm', price: { model: 'cost_plus' } }], metric('sum'))).toEqual([]);
    expect(chargeMetricMismatches([{ metricCode: 'm', price: { model: 'cost_plus' } }], metric('max'))).toEqual([{ index: 0, message: expect.stringContaining('needs a count or sum metric') }]);
    expect(chargeMetricMismatches([{ metricCode: 'm', price: { model: 'per_unit' }, dimensions: { prices: [{ price: { model: 'cost_plus' } }] } }], metric('sum', true))).toEqual([{ index: 0, message: expect.stringContaining('cannot cost negative usage') }]);
  });
});

describe('the invoice document explains a cost_plus line', () => {
  it('shows each table share, then the markup on the cost', () => {
    const breakdown = rateUsage({
      currency: 'USD',
      charges: [{ metricCode: 'images', price: { model: 'cost_plus', markup: '0.3' } }],
      usage: [{ metricCode: 'images', quantity: '7', costs: [{ effectiveFrom: MAR1, quantity: '4', unitCost: '0.037' }, { effectiveFrom: MAR15, quantity: '3', unitCost: '0.041' }] }],
    }).lines[0].breakdown;
    expect(breakdownRows({ kind: 'usage', breakdown: breakdown as unknown as Record<string, unknown> })).toEqual([
      { label: 'Cost from 2033-03-01', value: '4 × 0.037 = 0.148' },
      { label: 'Cost from 2033-03-15', value: '3 × 0.041 = 0.123' },
      { label: 'Cost plus markup', value: '0.271 × (1 + 0.3) = 0.3523' },
    ]);
  });
});
