/**
 * Rating to the cent: cases a billing engineer checks by hand, each worked out in its comment before the code
 * ran, against rateUsage / rateDimensionalUsage. Each quantity case is also rated through the Decimal path (a
 * charge bound no usage reaches sends a charge there: domain/charge-options.ts usesExtendedPricing), so the
 * BigInt fast path and the Decimal path are held to the same hand-worked figure.
 *
 * Tiers used below (T):  (0, 100] at 0.10 + 1.00 flat,  (100, 500] at 0.08 + 2.00 flat,  (500, ∞) at 0.05 + 3.00 flat.
 */
import { rateDimensionalUsage, type DimensionalCharge } from '../../domain/dimensions';
import type { PriceModel, Tier } from '../../domain/price-models';
import { rateUsage, type Charge, type RatedLine, type UsageForCharge } from '../../domain/rating';

const T: Tier[] = [
  { upTo: '100', unitPrice: '0.10', flatFee: '1.00' },
  { upTo: '500', unitPrice: '0.08', flatFee: '2.00' },
  { upTo: null, unitPrice: '0.05', flatFee: '3.00' },
];
const graduated: PriceModel = { model: 'graduated', tiers: T };
const volume: PriceModel = { model: 'volume', tiers: T };

/** The one usage line's amount, by both paths (they must agree). */
function amountOf(price: PriceModel, quantity: string, extra: Partial<Charge> = {}, currency = 'USD', usage: Partial<UsageForCharge> = {}): string {
  const rate = (charge: Charge): string => {
    const { lines } = rateUsage({ currency, charges: [charge], usage: [{ metricCode: 'm', quantity, ...usage }] });
    expect(lines).toHaveLength(1);
    return lines[0].amount;
  };
  const fast = rate({ metricCode: 'm', price, ...extra });
  const decimalPath = rate({ metricCode: 'm', price, ...extra, maxAmount: '999999999999999' });
  expect(decimalPath).toBe(fast);
  return fast;
}

const amounts = (lines: readonly RatedLine[]): [string, string][] => lines.map((line) => [line.kind, line.amount]);

describe('graduated and volume tiers at and around the boundaries', () => {
  it('1. graduated, exactly on a boundary: the next tier holds nothing and charges no flat fee', () => {
    // 100 × 0.10 + 1.00 = 11.00 (tier 2's flat fee not charged: 100 is inside (0, 100])
    expect(amountOf(graduated, '100')).toBe('11.00');
  });

  it('2. graduated, a fractional unit past the boundary enters the next tier with its flat fee', () => {
    // 11.00 + 0.5 × 0.08 + 2.00 = 13.04
    expect(amountOf(graduated, '100.5')).toBe('13.04');
  });

  it('3. graduated into the unbounded last tier', () => {
    // 11.00 + (400 × 0.08 + 2.00 = 34.00) + (500 × 0.05 + 3.00 = 28.00) = 73.00
    expect(amountOf(graduated, '1000')).toBe('73.00');
  });

  it('4. volume, exactly on a boundary: the whole quantity in that tier', () => {
    // 500 × 0.08 + 2.00 = 42.00
    expect(amountOf(volume, '500')).toBe('42.00');
  });

  it('5. volume, just past a boundary: the whole quantity at the cheaper tier (the price drops)', () => {
    // 500.001 × 0.05 + 3.00 = 28.00005 -> 28.00
    expect(amountOf(volume, '500.001')).toBe('28.00');
  });

  it('6. volume, a fraction of a unit in the first tier still pays its flat fee', () => {
    // 0.5 × 0.10 + 1.00 = 1.05
    expect(amountOf(volume, '0.5')).toBe('1.05');
  });

  it('7. zero usage rates to 0 on both models, whatever the flat fees', () => {
    expect([amountOf(graduated, '0'), amountOf(volume, '0')]).toEqual(['0.00', '0.00']);
  });

  it('8. blocks per tier at a boundary (graduated and volume)', () => {
    // graduated (0,100] blocks of 30 at 1.00, (100,∞) blocks of 50 at 2.00; 100.5 units:
    //   tier 1: 100 units = ceil(100/30) = 4 blocks = 4.00; tier 2: 0.5 units = 1 block = 2.00 -> 6.00
    const blocks: Tier[] = [
      { upTo: '100', unitPrice: '1.00', blockSize: '30' },
      { upTo: null, unitPrice: '2.00', blockSize: '50' },
    ];
    expect(amountOf({ model: 'graduated', tiers: blocks }, '100.5')).toBe('6.00');
    // volume 100 units: tier 1, ceil(100/30) = 4 blocks = 4.00; 100.5: tier 2, ceil(100.5/50) = 3 blocks = 6.00
    expect(amountOf({ model: 'volume', tiers: blocks }, '100')).toBe('4.00');
    expect(amountOf({ model: 'volume', tiers: blocks }, '100.5')).toBe('6.00');
  });
});

describe('package pricing', () => {
  it('9. a partial package is a whole package; included units come off first', () => {
    // 250 / 100 -> 3 packages × 5.00 = 15.00; with 50 included: 200 / 100 = 2 × 5.00 = 10.00
    const price: PriceModel = { model: 'package', packageSize: '100', packagePrice: '5.00' };
    expect([amountOf(price, '250'), amountOf(price, '250', { includedUnits: '50' })]).toEqual(['15.00', '10.00']);
  });

  it('10. a package size that is not a whole number', () => {
    // size 2.5 at 1.00: 10 -> 4 packages = 4.00; 10.1 -> ceil(4.04) = 5 = 5.00; 0.1 -> 1 = 1.00
    const price: PriceModel = { model: 'package', packageSize: '2.5', packagePrice: '1.00' };
    expect([amountOf(price, '10'), amountOf(price, '10.1'), amountOf(price, '0.1')]).toEqual(['4.00', '5.00', '1.00']);
  });
});

describe('percentage (outcome) prices', () => {
  it('11. per-event minimum and maximum on the percentage part, fixed fee on top', () => {
    // 2.5 % (min 0.50, max 10.00) + 0.30 per event; values 10, 100, 1000:
    //   10 × 2.5 % = 0.25 -> min 0.50;  100 -> 2.50;  1000 -> 25.00 -> max 10.00;  fees 13.00 + 3 × 0.30 = 13.90
    const price: PriceModel = { model: 'percentage', rate: '0.025', minFee: '0.50', maxFee: '10.00', fixedFeePerEvent: '0.30' };
    expect(amountOf(price, '3', {}, 'USD', { eventValues: ['10', '100', '1000'] })).toBe('13.90');
  });

  it('12. a free value the second event crosses: paid on its excess only', () => {
    // 10 %, first 100.00 of value free; values 60, 60, 10: 60 free (running 60), 60 crosses 100 and pays on 20
    // (2.00), 10 pays in full (1.00): 3.00
    const price: PriceModel = { model: 'percentage', rate: '0.10', freeValue: '100' };
    expect(amountOf(price, '3', {}, 'USD', { eventValues: ['60', '60', '10'] })).toBe('3.00');
  });
});

describe('hybrid: fee + usage + a credit bucket over several metrics + a commitment', () => {
  it('13. the bucket is drawn in charge order; the commitment counts usage before the bucket', () => {
    // api 3 × 1.00 = 3.00, storage 4 × 1.00 = 4.00; bucket 5.00 covers api 3.00 then storage 2.00 (charge order,
    // as rating.ts and docs/pricing.md say); commitment 20.00 - usage 7.00 = 13.00 true-up, not reduced by the bucket.
    // Lines: 3.00 + 4.00 - 5.00 + 13.00 = 15.00
    const result = rateUsage({
      currency: 'USD',
      charges: [
        { metricCode: 'api', price: { model: 'per_unit', unitPrice: '1.00' } },
        { metricCode: 'storage', price: { model: 'per_unit', unitPrice: '1.00' } },
      ],
      usage: [
        { metricCode: 'api', quantity: '3' },
        { metricCode: 'storage', quantity: '4' },
      ],
      creditBucket: '5.00',
      minimumCommitment: '20.00',
    });
    expect(amounts(result.lines)).toEqual([['usage', '3.00'], ['usage', '4.00'], ['credit', '-5.00'], ['commitment_true_up', '13.00']]);
    const credit = result.lines.find((line) => line.kind === 'credit');
    expect(credit?.kind === 'credit' && credit.breakdown.allocations).toEqual([{ metricCode: 'api', amount: '3.00' }, { metricCode: 'storage', amount: '2.00' }]);
    expect(result.subtotal).toBe('15.00');
  });
});

describe('dimensions: one combination has its own price, the others fall back', () => {
  it('14. the matched combination at its price, the rest at the default; the bucket follows line order', () => {
    // tokens: big at 2.00, anything else at the default 1.00; big 3 -> 6.00, small 2 -> 2.00 (default); plain api 1 -> 1.00
    // bucket 5.00: api 1.00, then tokens (model=big) 4.00 -> lines 1.00 + 6.00 + 2.00 - 5.00 = 4.00
    const tokens: DimensionalCharge = {
      metricCode: 'tokens',
      price: { model: 'per_unit', unitPrice: '1.00' },
      dimensions: { groupBy: ['model'], prices: [{ match: { model: 'big' }, price: { model: 'per_unit', unitPrice: '2.00' } }], defaultPrice: { model: 'per_unit', unitPrice: '1.00' }, unmatched: 'list' },
    };
    const result = rateDimensionalUsage({
      currency: 'USD',
      creditBucket: '5.00',
      charges: [{ metricCode: 'api', price: { model: 'per_unit', unitPrice: '1.00' } }, tokens],
      usage: [
        { metricCode: 'api', quantity: '1' },
        { metricCode: 'tokens', quantity: '5', groups: [{ dimensions: { model: 'small' }, quantity: '2' }, { dimensions: { model: 'big' }, quantity: '3' }] },
      ],
    });
    expect(result.lines.map((line) => [line.description, line.amount])).toEqual([
      ['api', '1.00'],
      ['tokens (model=big)', '6.00'],
      ['tokens (model=small)', '2.00'],
      ['Included usage credit', '-5.00'],
    ]);
    expect(result.subtotal).toBe('4.00');
  });
});

describe('zero- and three-decimal currencies: rounded once per line, total = sum of rounded lines', () => {
  it('15. JPY: two lines of 1.5 yen each bill 2 + 2 = 4 yen (not round(3.0) = 3): per line, as documented', () => {
    const result = rateUsage({
      currency: 'JPY',
      charges: [
        { metricCode: 'a', price: { model: 'per_unit', unitPrice: '0.5' } },
        { metricCode: 'b', price: { model: 'per_unit', unitPrice: '0.5' } },
      ],
      usage: [
        { metricCode: 'a', quantity: '3' },
        { metricCode: 'b', quantity: '3' },
      ],
    });
    expect([amounts(result.lines), result.subtotal]).toEqual([[['usage', '2'], ['usage', '2']], '4']);
  });

  it('16. JPY bucket and commitment in whole yen', () => {
    // 1000 × 0.4 = 400 yen; bucket 500 covers 400 (100 left); commitment 1000 - 400 = 600: 400 - 400 + 600 = 600
    const result = rateUsage({ currency: 'JPY', charges: [{ metricCode: 'm', price: { model: 'per_unit', unitPrice: '0.4' } }], usage: [{ metricCode: 'm', quantity: '1000' }], creditBucket: '500', minimumCommitment: '1000' });
    expect([amounts(result.lines), result.subtotal, result.creditRemaining]).toEqual([[['usage', '400'], ['credit', '-400'], ['commitment_true_up', '600']], '600', '100']);
  });

  it('17. KWD and BHD: three decimals, half-up once', () => {
    // 3 × 0.0005 = 0.0015 -> 0.002 KWD;  BHD 1.5 % of 12.345 = 0.185175 -> 0.185
    expect(amountOf({ model: 'per_unit', unitPrice: '0.0005' }, '3', {}, 'KWD')).toBe('0.002');
    expect(amountOf({ model: 'percentage', rate: '0.015' }, '1', {}, 'BHD', { eventValues: ['12.345'] })).toBe('0.185');
  });
});

describe('very large quantities and very small unit prices', () => {
  it('18. 10^15 units × 0.0000001 = 100,000,000.00 exactly', () => {
    expect(amountOf({ model: 'per_unit', unitPrice: '0.0000001' }, '1000000000000000')).toBe('100000000.00');
  });

  it('19. graduated over 10^15 units with tiny prices', () => {
    // (0, 10^12] at 0.0000001 = 100,000.00; (10^12, ∞) at 0.00000001: (10^15 - 10^12) × 10^-8 = 9,990,000.00 -> 10,090,000.00
    const price: PriceModel = { model: 'graduated', tiers: [{ upTo: '1000000000000', unitPrice: '0.0000001' }, { upTo: null, unitPrice: '0.00000001' }] };
    expect(amountOf(price, '1000000000000000')).toBe('10090000.00');
  });

  it('20. a unit price of 0.0000001: half a cent is the rounding edge', () => {
    // 49,999 × 0.0000001 = 0.0049999 -> 0.00; 50,000 × 0.0000001 = 0.005 -> 0.01 (half-up)
    expect([amountOf({ model: 'per_unit', unitPrice: '0.0000001' }, '49999'), amountOf({ model: 'per_unit', unitPrice: '0.0000001' }, '50000')]).toEqual(['0.00', '0.01']);
  });
});

describe('amounts past what money holds', () => {
  it('22. a line of 10^20 or more is refused with a RatingError (amount_out_of_range), not a TypeError', () => {
    // 999,999,999,999 × 999,999,999,999,999,999 ≈ 10^30: a valid price and a valid event value, no money string.
    // Before: TypeError 'not a decimal string' from summing the lines, which the API answered as a bare 500.
    const rate = () => rateUsage({ currency: 'USD', charges: [{ metricCode: 'm', price: { model: 'per_unit', unitPrice: '999999999999999999' } }], usage: [{ metricCode: 'm', quantity: '999999999999' }] });
    expect(rate).toThrow(expect.objectContaining({ name: 'RatingError', code: 'amount_out_of_range' }));
  });
});

describe('negative usage', () => {
  it('21. a negative quantity never reaches a line: rating refuses it (aggregation clamps a net-negative allow_negative sum to 0, docs/usage-events.md)', () => {
    expect(() => rateUsage({ currency: 'USD', charges: [{ metricCode: 'm', price: { model: 'per_unit', unitPrice: '1' } }], usage: [{ metricCode: 'm', quantity: '-5' }] })).toThrow(/non-negative/);
  });
});
