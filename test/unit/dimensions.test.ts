/**
 * Dimensional pricing (domain/dimensions.ts): worked examples checked by hand to the cent, the catalog checks a
 * plan must pass, and a property: the per-combination lines equal each combination rated alone.
 */
import fc from 'fast-check';
import {
  DimensionPriceIndex,
  combinationOf,
  dimensionKey,
  findAmbiguities,
  rateDimensionalUsage,
  validateChargeDimensions,
  type ChargeDimensions,
  type CombinationLine,
  type DimensionalCharge,
  type DimensionPrice,
  type UsageGroup,
} from '../../domain/dimensions';
import { combinationMargins } from '../../domain/combination-margins';
import { ratedLinesForPeriod } from '../../domain/invoice';
import { formatMoney, sumMoney, toDecimal } from '../../domain/money';
import { rateUsage } from '../../domain/rating';
import { invoicedAmounts, rerateDifference } from '../../domain/rerating';

const GROUP_BY = ['model', 'direction'];

/** Per 1,000 tokens: large output 0.060, large input 0.015, small anything 0.002, cached input at a discount. */
const LLM_DIMENSIONS: ChargeDimensions = {
  groupBy: GROUP_BY,
  prices: [
    { match: { model: 'large', direction: 'output' }, price: { model: 'per_unit', unitPrice: '0.00006' } },
    { match: { model: 'large', direction: 'input' }, price: { model: 'per_unit', unitPrice: '0.000015' } },
    { match: { model: 'small' }, price: { model: 'per_unit', unitPrice: '0.000002' } },
    { match: { direction: 'cached' }, price: { model: 'per_unit', unitPrice: '0.0000075' } },
    { match: { model: 'small', direction: 'cached' }, price: { model: 'per_unit', unitPrice: '0.000001' } },
  ],
  defaultPrice: { model: 'per_unit', unitPrice: '0.00001' },
  unmatched: 'list',
};

function llmCharge(dimensions: Partial<ChargeDimensions> = {}, extra: Partial<DimensionalCharge> = {}): DimensionalCharge {
  return { chargeId: 'tokens', metricCode: 'tokens', displayName: 'Tokens', price: { model: 'per_unit', unitPrice: '0' }, dimensions: { ...LLM_DIMENSIONS, ...dimensions }, ...extra };
}

function group(model: string | undefined, direction: string | undefined, quantity: string): UsageGroup {
  return { dimensions: { ...(model ? { model } : {}), ...(direction ? { direction } : {}) }, quantity };
}

function combinationLines(lines: readonly unknown[]): CombinationLine[] {
  return lines.filter((line): line is CombinationLine => (line as { kind: string }).kind === 'usage');
}

describe('matching', () => {
  const index = new DimensionPriceIndex(LLM_DIMENSIONS);

  it('prices a fully named combination by its exact match', () => {
    expect(index.resolve({ model: 'large', direction: 'output' })?.source).toEqual({ kind: 'match', index: 0, match: { model: 'large', direction: 'output' } });
  });

  it('treats a dimension a match leaves out as a wildcard', () => {
    expect(index.resolve({ model: 'small', direction: 'output' })?.source).toMatchObject({ index: 2 });
    expect(index.resolve({ model: 'medium', direction: 'cached' })?.source).toMatchObject({ index: 3 });
  });

  it('lets the most specific match win', () => {
    // small+cached fits {model: small}, {direction: cached} and {model: small, direction: cached}: the last names two.
    expect(index.resolve({ model: 'small', direction: 'cached' })?.source).toMatchObject({ index: 4 });
  });

  it('falls back to the default price, and to nothing without one', () => {
    expect(index.resolve({ model: 'medium', direction: 'output' })?.source).toEqual({ kind: 'default' });
    const noDefault = new DimensionPriceIndex({ ...LLM_DIMENSIONS, defaultPrice: undefined });
    expect(noDefault.resolve({ model: 'medium', direction: 'output' })).toBeUndefined();
  });

  it('reads an event combination from its properties, numbers as JSON text and missing ones left out', () => {
    expect(combinationOf({ model: 'large', direction: 'output', tokens: 5 }, GROUP_BY)).toEqual({ model: 'large', direction: 'output' });
    expect(combinationOf({ model: 7, extra: 'x' }, GROUP_BY)).toEqual({ model: '7' });
    expect(dimensionKey({ direction: 'output', model: 'a&b=c' }, GROUP_BY)).toBe('model=a%26b%3Dc&direction=output');
  });
});

describe('catalog checks at plan creation', () => {
  it('refuses two matches that tie on a combination', () => {
    const ambiguous: DimensionPrice[] = [
      { match: { model: 'large' }, price: { model: 'per_unit', unitPrice: '1' } },
      { match: { direction: 'output' }, price: { model: 'per_unit', unitPrice: '2' } },
    ];
    expect(findAmbiguities(ambiguous, GROUP_BY)).toEqual([
      'prices[0] and prices[1] both match model=large, direction=output equally; add a price matching exactly that combination',
    ]);
    // Naming the overlap exactly settles it.
    expect(findAmbiguities([...ambiguous, { match: { model: 'large', direction: 'output' }, price: { model: 'per_unit', unitPrice: '3' } }], GROUP_BY)).toEqual([]);
  });

  it('accepts the LLM catalog, whose overlaps are all settled', () => {
    expect(validateChargeDimensions(LLM_DIMENSIONS, GROUP_BY)).toEqual([]);
  });

  it('refuses unknown dimensions, repeated matches, mixed percentage and quantity prices, flat prices', () => {
    const errors = validateChargeDimensions(
      {
        groupBy: GROUP_BY,
        unmatched: 'reject',
        prices: [
          { match: { region: 'eu' }, price: { model: 'per_unit', unitPrice: '1' } },
          { match: { model: 'a' }, price: { model: 'per_unit', unitPrice: '1' } },
          { match: { model: 'a' }, price: { model: 'percentage', rate: '0.1' } },
        ],
      },
      GROUP_BY,
    );
    expect(errors).toEqual([
      'dimensions must price every combination as percentage, or none of them (one metric feeds them all)',
      "dimensions.prices[0].match.region is not one of the metric's group_by (model, direction)",
      'dimensions.prices[2].match repeats dimensions.prices[1].match',
    ]);
    expect(validateChargeDimensions({ groupBy: [], unmatched: 'list', prices: [] }, [])).toEqual(['dimensions need a metric with group_by properties']);
  });
});

describe('rating per combination', () => {
  it('bills one line per combination with usage, each with its breakdown, under its charge', () => {
    const result = rateDimensionalUsage({
      currency: 'USD',
      charges: [llmCharge()],
      usage: [
        {
          metricCode: 'tokens',
          quantity: '3650000',
          groups: [
            group('large', 'output', '1000000'), // 1,000,000 × 0.00006   = 60.00
            group('large', 'input', '2000000'), //  2,000,000 × 0.000015  = 30.00
            group('small', 'cached', '300000'), //    300,000 × 0.000001  =  0.30
            group('medium', 'cached', '200000'), //   200,000 × 0.0000075 =  1.50
            group('mystery', 'input', '150000'), //   150,000 × 0.00001   =  1.50 (default price)
          ],
        },
      ],
    });
    const lines = combinationLines(result.lines);
    expect(lines.map((line) => [line.description, line.quantity, line.amount, line.dimensionKey])).toEqual([
      ['Tokens (model=large, direction=input)', '2000000', '30.00', 'model=large&direction=input'],
      ['Tokens (model=large, direction=output)', '1000000', '60.00', 'model=large&direction=output'],
      ['Tokens (model=medium, direction=cached)', '200000', '1.50', 'model=medium&direction=cached'],
      ['Tokens (model=mystery, direction=input)', '150000', '1.50', 'model=mystery&direction=input'],
      ['Tokens (model=small, direction=cached)', '300000', '0.30', 'model=small&direction=cached'],
    ]);
    expect(lines.every((line) => line.metricCode === 'tokens' && line.chargeId === 'tokens')).toBe(true);
    expect(lines[3].priceSource).toEqual({ kind: 'default' });
    expect(lines[1].breakdown).toMatchObject({ model: 'per_unit', unitPrice: '0.00006', billableQuantity: '1000000', dimensionKey: 'model=large&direction=output' });
    // 30.00 + 60.00 + 1.50 + 1.50 + 0.30 = 93.30
    expect(result.usageTotal).toBe('93.30');
    expect(result.subtotal).toBe('93.30');
  });

  it('applies included units and tiers per combination (documented)', () => {
    const dimensions: ChargeDimensions = {
      groupBy: ['size'],
      unmatched: 'reject',
      prices: [
        {
          match: { size: 'hd' },
          // First 10 images at 0.10, the rest at 0.05; 5 included per combination.
          price: { model: 'graduated', tiers: [{ upTo: '10', unitPrice: '0.10' }, { upTo: null, unitPrice: '0.05' }] },
          includedUnits: '5',
        },
      ],
      defaultPrice: { model: 'per_unit', unitPrice: '0.02' },
    };
    const result = rateDimensionalUsage({
      currency: 'USD',
      charges: [{ metricCode: 'images', price: { model: 'per_unit', unitPrice: '0' }, includedUnits: '3', dimensions }],
      usage: [{ metricCode: 'images', quantity: '43', groups: [{ dimensions: { size: 'hd' }, quantity: '20' }, { dimensions: { size: 'sd' }, quantity: '23' }] }],
    });
    // hd: 20 − 5 included = 15 billable: 10 × 0.10 + 5 × 0.05 = 1.25 (tiers restart for the combination).
    // sd: the default price takes the charge's 3 included units: (23 − 3) × 0.02 = 0.40.
    expect(combinationLines(result.lines).map((line) => [line.dimensionKey, line.amount])).toEqual([
      ['size=hd', '1.25'],
      ['size=sd', '0.40'],
    ]);
  });

  it('applies the credit bucket and the minimum commitment over the whole invoice', () => {
    const result = rateDimensionalUsage({
      currency: 'USD',
      charges: [llmCharge(), { metricCode: 'seats', price: { model: 'per_unit', unitPrice: '2.00' } }],
      usage: [
        { metricCode: 'tokens', quantity: '1500000', groups: [group('large', 'output', '500000'), group('small', 'input', '1000000')] },
        { metricCode: 'seats', quantity: '3' },
      ],
      creditBucket: '30.00',
      minimumCommitment: '50.00',
    });
    // large/output 500,000 × 0.00006 = 30.00; small/input 1,000,000 × 0.000002 = 2.00; seats 3 × 2.00 = 6.00.
    // usage 38.00; credit −30.00 (first 30.00 of the lines, in order); true-up 50.00 − 38.00 = 12.00.
    expect(result.lines.map((line) => [line.kind, line.amount])).toEqual([
      ['usage', '30.00'],
      ['usage', '2.00'],
      ['usage', '6.00'],
      ['credit', '-30.00'],
      ['commitment_true_up', '12.00'],
    ]);
    expect(result.subtotal).toBe('20.00');
    const credit = result.lines.find((line) => line.kind === 'credit')!;
    expect((credit.breakdown as { allocations: readonly unknown[] }).allocations).toEqual([{ metricCode: 'tokens', chargeId: 'tokens', amount: '30.00', dimensionKey: 'model=large&direction=output' }]);
  });

  it('lists usage no price matches at 0, visibly, when the plan says "list"', () => {
    const result = rateDimensionalUsage({
      currency: 'USD',
      charges: [llmCharge({ defaultPrice: undefined })],
      usage: [{ metricCode: 'tokens', quantity: '1100', groups: [group('large', 'output', '1000'), group('medium', 'output', '100')] }],
    });
    expect(result.lines.map((line) => [line.description, line.amount])).toEqual([
      ['Tokens (model=large, direction=output)', '0.06'],
      ['tokens (model=medium, direction=output): no price matches, not billed', '0.00'],
    ]);
    expect(result.unpriced).toEqual([{ metricCode: 'tokens', chargeId: 'tokens', dimensions: { model: 'medium', direction: 'output' }, dimensionKey: 'model=medium&direction=output', quantity: '100' }]);
  });

  it('prices percentage outcomes per combination with their event values', () => {
    const dimensions: ChargeDimensions = {
      groupBy: ['segment'],
      unmatched: 'list',
      prices: [{ match: { segment: 'enterprise' }, price: { model: 'percentage', rate: '0.01', maxFee: '50.00' } }],
      defaultPrice: { model: 'percentage', rate: '0.025' },
    };
    const result = rateDimensionalUsage({
      currency: 'USD',
      charges: [{ metricCode: 'deals', price: { model: 'percentage', rate: '0' }, dimensions }],
      usage: [
        {
          metricCode: 'deals',
          quantity: '3',
          eventValues: ['10000', '1000', '400'],
          groups: [
            { dimensions: { segment: 'enterprise' }, quantity: '2', eventValues: ['10000', '1000'] },
            { dimensions: { segment: 'smb' }, quantity: '1', eventValues: ['400'] },
          ],
        },
      ],
    });
    // enterprise: 1 % of 10,000 = 100 capped at 50.00, + 1 % of 1,000 = 10.00 → 60.00; smb: 2.5 % of 400 = 10.00.
    expect(combinationLines(result.lines).map((line) => [line.dimensionKey, line.amount])).toEqual([
      ['segment=enterprise', '60.00'],
      ['segment=smb', '10.00'],
    ]);
  });

  it('rates a plan without dimensional charges exactly as rateUsage does', () => {
    const input = { currency: 'USD', charges: [{ metricCode: 'api', price: { model: 'per_unit' as const, unitPrice: '0.01' } }], usage: [{ metricCode: 'api', quantity: '123' }] };
    expect(rateDimensionalUsage(input)).toEqual({ ...rateUsage(input), unpriced: [] });
  });
});

describe('property: the per-combination lines equal each combination rated alone', () => {
  const tiers = fc.constantFrom(
    { model: 'per_unit' as const, unitPrice: '0.013' },
    { model: 'graduated' as const, tiers: [{ upTo: '100', unitPrice: '0.50', flatFee: '1.00' }, { upTo: null, unitPrice: '0.25' }] },
    { model: 'volume' as const, tiers: [{ upTo: '50', unitPrice: '0.30' }, { upTo: null, unitPrice: '0.20' }] },
    { model: 'package' as const, packageSize: '25', packagePrice: '3.00' },
  );
  const models = ['a', 'b', 'c'];
  const directions = ['in', 'out'];

  it('holds for random catalogs and usage', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...models), fc.constantFrom(...directions), tiers), { maxLength: 6 }),
        tiers,
        fc.array(fc.tuple(fc.constantFrom(...models), fc.constantFrom(...directions), fc.integer({ min: 0, max: 500 })), { maxLength: 6 }),
        (entries, defaultPrice, usageEntries) => {
          // Fully named matches never tie; keep the first of each combination.
          const seen = new Set<string>();
          const prices = entries
            .filter(([model, direction]) => !seen.has(`${model}/${direction}`) && seen.add(`${model}/${direction}`))
            .map(([model, direction, price]) => ({ match: { model, direction }, price }));
          const dimensions: ChargeDimensions = { groupBy: GROUP_BY, prices, defaultPrice, unmatched: 'list' };
          const quantities = new Map<string, number>();
          for (const [model, direction, quantity] of usageEntries) quantities.set(`${model}/${direction}`, (quantities.get(`${model}/${direction}`) ?? 0) + quantity);
          const groups = [...quantities].map(([key, quantity]) => {
            const [model, direction] = key.split('/');
            return group(model, direction, String(quantity));
          });
          const result = rateDimensionalUsage({
            currency: 'USD',
            charges: [{ metricCode: 't', price: { model: 'per_unit', unitPrice: '0' }, dimensions }],
            usage: [{ metricCode: 't', quantity: '0', groups }],
          });
          const index = new DimensionPriceIndex(dimensions);
          for (const line of combinationLines(result.lines)) {
            const price = index.resolve(line.dimensions)!.price;
            const alone = rateUsage({ currency: 'USD', charges: [{ metricCode: 't', price }], usage: [{ metricCode: 't', quantity: line.quantity }] });
            expect(line.amount).toBe(alone.lines[0].amount);
          }
          expect(combinationLines(result.lines)).toHaveLength(groups.length);
        },
      ),
      { numRuns: 200, seed: 20261205 },
    );
  });
});

describe('re-rating a dimensional invoice', () => {
  const period = { start: '2031-03-01T00:00:00.000Z', end: '2031-04-01T00:00:00.000Z' };

  it('corrects each combination on its own, and reverses a combination no longer billed', () => {
    const rate = (groups: UsageGroup[]) =>
      rateDimensionalUsage({ currency: 'USD', charges: [llmCharge()], usage: [{ metricCode: 'tokens', quantity: '0', groups }] });
    const invoiced = ratedLinesForPeriod(rate([group('large', 'output', '100000'), group('small', 'input', '500000')]).lines, period);
    // large/output 100,000 × 0.00006 = 6.00; small/input 500,000 × 0.000002 = 1.00.
    expect(invoiced.map((line) => line.amount)).toEqual(['6.00', '1.00']);

    // Late usage: large/output grows to 150,000 (9.00), small/input moves to medium (500,000 × 0.00001 = 5.00).
    const recomputed = rate([group('large', 'output', '150000'), group('medium', 'input', '500000')]);
    const difference = rerateDifference(recomputed.lines, invoicedAmounts(invoiced, []), 'USD', period);
    expect(difference.lines.map((line) => [line.description, line.amount, line.breakdown.dimensionKey])).toEqual([
      ['Tokens (model=large, direction=output) (correction)', '3.00', 'model=large&direction=output'],
      ['Tokens (model=medium, direction=input) (correction)', '5.00', 'model=medium&direction=input'],
      ['Tokens (model=small, direction=input) (correction)', '-1.00', 'model=small&direction=input'],
    ]);
    expect(difference.total).toBe('7.00');
    // Once carried out, the same recomputation has nothing left to do.
    expect(rerateDifference(recomputed.lines, invoicedAmounts(invoiced, difference.lines), 'USD', period).outcome).toBe('none');
  });
});

describe('margins per combination', () => {
  it('splits revenue, cost and margin per combination and flags the loss-makers', () => {
    const lines = combinationMargins(
      'USD',
      [
        { metricCode: 'tokens', dimensionKey: 'model=large', revenue: '10.00' },
        { metricCode: 'tokens', dimensionKey: 'model=large', revenue: '-1.00' }, // a correction
        { metricCode: 'tokens', dimensionKey: 'model=small', revenue: '0.50' },
      ],
      [
        { metricCode: 'tokens', dimensionKey: 'model=large', quantity: '300000', unitCost: '0.000012' }, // 3.60
        { metricCode: 'tokens', dimensionKey: 'model=large', quantity: '100001', unitCost: '0.000012' }, // 1.200012 → 1.20
        { metricCode: 'tokens', dimensionKey: 'model=small', quantity: '100000', unitCost: '0.000012' }, // 1.20
      ],
    );
    expect(lines).toEqual([
      { metricCode: 'tokens', dimensionKey: 'model=small', quantity: '100000', revenue: '0.50', cost: '1.20', margin: '-0.70', lossMaking: true },
      { metricCode: 'tokens', dimensionKey: 'model=large', quantity: '400001', revenue: '9.00', cost: '4.80', margin: '4.20', lossMaking: false },
    ]);
  });
});

describe('property: with wildcards, included units and a credit bucket, lines still equal each combination alone', () => {
  const prices = fc.constantFrom(
    { model: 'per_unit' as const, unitPrice: '0.013' },
    { model: 'graduated' as const, tiers: [{ upTo: '100', unitPrice: '0.50', flatFee: '1.00' }, { upTo: null, unitPrice: '0.25' }] },
    { model: 'volume' as const, tiers: [{ upTo: '50', unitPrice: '0.30' }, { upTo: null, unitPrice: '0.20' }] },
    { model: 'package' as const, packageSize: '25', packagePrice: '3.00' },
  );
  const value = (values: readonly string[]) => fc.option(fc.constantFrom(...values), { nil: undefined });
  const models = ['a', 'b', 'c'];
  const directions = ['in', 'out', 'cached'];
  const entry = fc.record({ model: value(models), direction: value(directions), price: prices, includedUnits: fc.option(fc.constantFrom('0', '10', '150'), { nil: undefined }) });
  const usageEntry = fc.tuple(value([...models, 'zzz']), value(directions), fc.integer({ min: 0, max: 400 }));

  it('holds for random catalogs (ambiguous ones left out), usage, policies and plan-wide credit', () => {
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 8 }),
        fc.option(prices, { nil: undefined }),
        fc.array(usageEntry, { maxLength: 8 }),
        fc.constantFrom(undefined, '0', '20'),
        fc.constantFrom(undefined, '5.00'),
        (entries, defaultPrice, usageEntries, chargeIncluded, creditBucket) => {
          const seen = new Set<string>();
          const catalog: DimensionPrice[] = [];
          for (const { model, direction, price, includedUnits } of entries) {
            const match = { ...(model ? { model } : {}), ...(direction ? { direction } : {}) };
            const key = dimensionKey(match, GROUP_BY);
            if (seen.has(key)) continue;
            seen.add(key);
            catalog.push({ match, price, ...(includedUnits === undefined ? {} : { includedUnits }) });
          }
          if (findAmbiguities(catalog, GROUP_BY).length > 0) return; // refused at plan creation
          const dimensions: ChargeDimensions = { groupBy: GROUP_BY, prices: catalog, ...(defaultPrice ? { defaultPrice } : {}), unmatched: 'list' };
          const quantities = new Map<string, { model?: string; direction?: string; quantity: number }>();
          for (const [model, direction, quantity] of usageEntries) {
            const key = `${model ?? ''}/${direction ?? ''}`;
            quantities.set(key, { model, direction, quantity: (quantities.get(key)?.quantity ?? 0) + quantity });
          }
          const groups = [...quantities.values()].map(({ model, direction, quantity }) => group(model, direction, String(quantity)));
          const charge: DimensionalCharge = { chargeId: 't', metricCode: 't', price: { model: 'per_unit', unitPrice: '0' }, dimensions, ...(chargeIncluded ? { includedUnits: chargeIncluded } : {}) };
          const input = { currency: 'USD', charges: [charge], usage: [{ metricCode: 't', quantity: '0', groups }], ...(creditBucket ? { creditBucket } : {}) };
          const result = rateDimensionalUsage(input);

          const index = new DimensionPriceIndex(dimensions);
          const aloneAmounts: string[] = [];
          const lines = combinationLines(result.lines);
          for (const line of lines) {
            const resolved = index.resolve(line.dimensions);
            if (!resolved) {
              expect([line.amount, line.priceSource]).toEqual(['0.00', null]); // listed, not billed
              continue;
            }
            const includedUnits = resolved.includedUnits ?? chargeIncluded;
            const alone = rateUsage({ currency: 'USD', charges: [{ metricCode: 't', price: resolved.price, ...(includedUnits ? { includedUnits } : {}) }], usage: [{ metricCode: 't', quantity: line.quantity }] });
            expect(line.amount).toBe(alone.lines[0].amount);
            aloneAmounts.push(alone.lines[0].amount);
          }
          // One line per combination with usage; their sum is the usage total, before the plan-wide credit.
          expect(lines).toHaveLength(groups.length);
          expect(result.usageTotal).toBe(formatMoney(sumMoney(aloneAmounts.map(toDecimal)), 'USD'));
          // Rating the same plan objects again (the expansion cache) equals rating fresh copies of them.
          expect(rateDimensionalUsage(input)).toEqual(rateDimensionalUsage(structuredClone(input)));
        },
      ),
      { numRuns: 300, seed: 20261205 },
    );
  });

  it('rates the same charge object with new usage, and a charge listed twice, as fresh copies would', () => {
    const charge = llmCharge();
    const rate = (charges: DimensionalCharge[], groups: UsageGroup[]) => rateDimensionalUsage({ currency: 'USD', charges, usage: [{ metricCode: 'tokens', quantity: '0', groups }] });
    const first = [group('large', 'output', '100000'), group('small', 'cached', '7')];
    const second = [group('large', 'output', '50000'), group('medium', 'input', '1000'), group('unknown', 'cached', '10')];
    expect(rate([charge], first)).toEqual(rate([structuredClone(charge)], first));
    expect(rate([charge], second)).toEqual(rate([structuredClone(charge)], second));
    expect(rate([charge, charge], second)).toEqual(rate([structuredClone(charge), structuredClone(charge)], second));
    // large/output 50,000 × 0.00006 = 3.00, listed once per charge.
    expect(rate([charge, charge], second).lines.filter((line) => line.description === 'Tokens (model=large, direction=output)').map((line) => line.amount)).toEqual(['3.00', '3.00']);
  });
});
