/**
 * Worked examples, checked by hand to the minor unit, for the pricing rules of issue 14 point 6
 * (docs/pricing.md "Charge options"): free allowances on percentage charges, per-charge minimum and maximum,
 * the commitment counting recurring fees, seats prorated within the period, block sizes per tier, and the
 * first tier's flat fee at zero usage.
 */
import { rateChargeInFixedPoint } from '../../domain/fixed-point-rating';
import type { PercentagePrice, PriceModel } from '../../domain/price-models';
import { RatingError, rateUsage, validateCharge, type Charge, type RatedLine, type RatingInput, type UsageLine } from '../../domain/rating';
import { SeatProrationError, proratedUnits } from '../../domain/seat-proration';
import { commitmentTerms } from '../../domain/plan-terms';

function usageLine(lines: readonly RatedLine[]): UsageLine {
  const line = lines.find((candidate) => candidate.kind === 'usage');
  if (line === undefined || line.kind !== 'usage') throw new Error('no usage line');
  return line;
}

function rateQuantity(price: PriceModel, quantity: string, extra: Partial<Charge> = {}, currency = 'USD'): UsageLine {
  return usageLine(rateUsage({ currency, charges: [{ metricCode: 'm', price, ...extra }], usage: [{ metricCode: 'm', quantity }] }).lines);
}

function rateEvents(price: PercentagePrice, values: string[], extra: Partial<Charge> = {}): UsageLine {
  return usageLine(
    rateUsage({ currency: 'USD', charges: [{ metricCode: 'm', price, ...extra }], usage: [{ metricCode: 'm', quantity: String(values.length), eventValues: values }] }).lines,
  );
}

function ratingErrorCode(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof RatingError) return error.code;
    throw error;
  }
  return undefined;
}

describe('free allowance on percentage charges', () => {
  it('freeEvents: the first events bear neither the rate nor the fixed fee', () => {
    // events 100, 50 free; 200 × 2 % = 4.00, + 0.30 fixed for the one paid event = 4.30
    const line = rateEvents({ model: 'percentage', rate: '0.02', fixedFeePerEvent: '0.30', freeEvents: '2' }, ['100', '50', '200']);
    expect(line.amount).toBe('4.30');
    expect(line.breakdown).toMatchObject({ eventCount: 3, eventsFree: 2, valueFree: '150', valueAtRate: '200', fixedFees: '0.3', percentageFees: '4' });
  });

  it('freeValue: the event that crosses the free value pays on its excess, and pays the fixed fee and minimum', () => {
    // 100 free (running 100); 50 crosses 120: 30 paid × 2 % = 0.60 (above min 0.50); 200 × 2 % = 4.00
    // fixed fees: 2 paid events × 0.30 = 0.60; total 0.60 + 4.00 + 0.60 = 5.20
    const line = rateEvents({ model: 'percentage', rate: '0.02', minFee: '0.50', fixedFeePerEvent: '0.30', freeValue: '120' }, ['100', '50', '200']);
    expect(line.amount).toBe('5.20');
    expect(line.breakdown).toMatchObject({ eventsFree: 1, valueFree: '120', valueAtRate: '230', eventsAtMinimum: 0, fixedFees: '0.6' });
  });

  it('the crossing event is raised to the minimum on its paid part; free events are never raised', () => {
    // 100 crosses 95: 5 paid × 2 % = 0.10 < min 0.50 -> 0.50. With freeEvents 1 instead, the event is free: 0.00
    expect(rateEvents({ model: 'percentage', rate: '0.02', minFee: '0.50', freeValue: '95' }, ['100']).amount).toBe('0.50');
    expect(rateEvents({ model: 'percentage', rate: '0.02', minFee: '0.50', freeEvents: '1' }, ['100']).amount).toBe('0.00');
  });

  it('with both limits the allowance ends at whichever runs out first', () => {
    // freeEvents 1 runs out before freeValue 1000: 100 free, 50 × 2 % = 1.00
    const line = rateEvents({ model: 'percentage', rate: '0.02', freeEvents: '1', freeValue: '1000' }, ['100', '50']);
    expect(line.amount).toBe('1.00');
    expect(line.breakdown).toMatchObject({ freeEvents: '1', freeValue: '1000', eventsFree: 1, valueFree: '100' });
  });

  it('the maximum caps a paid event after the allowance; rounding happens once on the line', () => {
    // 10.10 free; 33.33 × 2.9 % = 0.96657 (below max 5) -> 0.97; 1000 × 2.9 % = 29 capped at 5; total 5.96657 -> 5.97
    expect(rateEvents({ model: 'percentage', rate: '0.029', maxFee: '5', freeEvents: '1' }, ['10.10', '33.33', '1000']).amount).toBe('5.97');
  });

  it('more free events than events bills nothing; without an allowance the breakdown is unchanged', () => {
    expect(rateEvents({ model: 'percentage', rate: '0.02', fixedFeePerEvent: '1', freeEvents: '5' }, ['100', '200']).amount).toBe('0.00');
    expect(rateEvents({ model: 'percentage', rate: '0.02' }, ['100']).breakdown).not.toHaveProperty('eventsFree');
  });

  it('refuses a fractional or negative freeEvents and a negative freeValue', () => {
    expect(validateCharge({ metricCode: 'm', price: { model: 'percentage', rate: '0.02', freeEvents: '1.5' } })).toEqual(['price.freeEvents must be a whole number as a string, e.g. "3"']);
    expect(validateCharge({ metricCode: 'm', price: { model: 'percentage', rate: '0.02', freeEvents: '-1' } })).toHaveLength(1);
    expect(validateCharge({ metricCode: 'm', price: { model: 'percentage', rate: '0.02', freeValue: '-1' } })).toEqual(['price.freeValue must not be negative']);
  });
});

describe('minimum and maximum per charge', () => {
  const perUnit: PriceModel = { model: 'per_unit', unitPrice: '0.10' };

  it('raises the charge to its minimum and shows the adjustment in the breakdown', () => {
    // 30 × 0.10 = 3.00 < 5.00 -> 5.00, adjustment +2
    const line = rateQuantity(perUnit, '30', { minAmount: '5.00' });
    expect(line.amount).toBe('5.00');
    expect(line.breakdown.chargeBounds).toEqual({ minAmount: '5', maxAmount: null, ratedAmount: '3', adjustment: '2' });
    expect(line.breakdown.amount).toBe('5');
  });

  it('caps the charge at its maximum', () => {
    // 250 × 0.10 = 25.00 > 20.00 -> 20.00, adjustment -5
    const line = rateQuantity(perUnit, '250', { minAmount: '5', maxAmount: '20.00' });
    expect(line.amount).toBe('20.00');
    expect(line.breakdown.chargeBounds).toMatchObject({ ratedAmount: '25', adjustment: '-5' });
  });

  it('bills the minimum at zero usage, after included units', () => {
    expect(rateQuantity(perUnit, '0', { minAmount: '5' }).amount).toBe('5.00');
    // 40 used, 50 included: 0 billable -> the minimum 5.00
    expect(rateQuantity(perUnit, '40', { minAmount: '5', includedUnits: '50' }).amount).toBe('5.00');
  });

  it('bounds the exact amount, then the line rounds once', () => {
    // 10 × 0.333 = 3.33 (exact 3.33) capped at 3.305 is not money in USD -> refused; capped at 3.30 -> 3.30
    expect(rateQuantity({ model: 'per_unit', unitPrice: '0.333' }, '10', { maxAmount: '3.30' }).amount).toBe('3.30');
    expect(rateQuantity({ model: 'per_unit', unitPrice: '0.3333' }, '10', { minAmount: '3.34' }).amount).toBe('3.34');
    expect(ratingErrorCode(() => rateQuantity(perUnit, '1', { maxAmount: '3.305' }))).toBe('invalid_money_amount');
    expect(ratingErrorCode(() => rateQuantity(perUnit, '1', { minAmount: '5.5' }, 'JPY'))).toBe('invalid_money_amount');
  });

  it('bounds a percentage charge as a whole (after the per-event min/max and fixed fees)', () => {
    // 3 × (100 × 1 % = 1.00) + 3 × 0.25 fixed = 3.75 -> raised to the charge minimum 10.00
    expect(rateEvents({ model: 'percentage', rate: '0.01', fixedFeePerEvent: '0.25' }, ['100', '100', '100'], { minAmount: '10' }).amount).toBe('10.00');
  });

  it('the bounded amount is the usage the commitment and credit see', () => {
    // charge min 5.00 at zero usage; commitment 12.00 -> true-up 7.00; credit bucket 2.00 covers 2.00 of the 5.00
    const result = rateUsage({
      currency: 'USD',
      charges: [{ metricCode: 'm', price: perUnit, minAmount: '5' }],
      usage: [],
      creditBucket: '2.00',
      minimumCommitment: '12.00',
    });
    expect(result.lines.map((line) => [line.kind, line.amount])).toEqual([['usage', '5.00'], ['credit', '-2.00'], ['commitment_true_up', '7.00']]);
    expect(result.subtotal).toBe('10.00');
  });

  it('refuses min above max and bounds on a flat charge', () => {
    expect(validateCharge({ metricCode: 'm', price: perUnit, minAmount: '10', maxAmount: '5' })).toEqual(['minAmount must not be greater than maxAmount']);
    expect(validateCharge({ metricCode: 'm', price: { model: 'flat', amount: '10' }, minAmount: '1' })).toEqual(['minAmount does not apply to flat pricing (a flat fee is its own amount)']);
    expect(validateCharge({ metricCode: 'm', price: perUnit, maxAmount: '-1' })).toEqual(['maxAmount must be a non-negative decimal string']);
  });
});

describe('minimum commitment counting recurring fees', () => {
  const input: RatingInput = {
    currency: 'USD',
    charges: [{ metricCode: 'm', price: { model: 'per_unit', unitPrice: '1' } }],
    usage: [{ metricCode: 'm', quantity: '30' }],
    minimumCommitment: '100.00',
  };

  it('by default counts usage only (unchanged)', () => {
    const trueUp = rateUsage(input).lines.find((line) => line.kind === 'commitment_true_up');
    expect(trueUp?.amount).toBe('70.00');
    expect(trueUp?.breakdown).not.toHaveProperty('feesCounted');
  });

  it('with fees counted, the true-up is commitment − usage − fees', () => {
    // 100.00 − 30.00 − 49.99 = 20.01
    const trueUp = rateUsage({ ...input, feesTowardCommitment: '49.99' }).lines.find((line) => line.kind === 'commitment_true_up');
    expect(trueUp?.amount).toBe('20.01');
    expect(trueUp?.breakdown).toEqual({ minimumCommitment: '100.00', usageTotal: '30.00', feesCounted: '49.99', shortfall: '20.01' });
  });

  it('fees that cover the rest leave no true-up', () => {
    expect(rateUsage({ ...input, feesTowardCommitment: '70.00' }).lines.map((line) => line.kind)).toEqual(['usage']);
  });
});

describe('seats prorated within the period', () => {
  const period = { start: '2026-11-01T00:00:00Z', end: '2026-12-01T00:00:00Z' }; // 30 days

  it('a seat added on day 15 of a 30-day period counts half', () => {
    const result = proratedUnits({ period, openingUnits: '10', changes: [{ at: '2026-11-16T00:00:00Z', delta: '1' }] });
    // 10 × 30 days + 1 × 15 days = 10.5 seat-periods; at 8.00 a seat: 84.00
    expect(result.quantity).toBe('10.5');
    expect(result.periodSeconds).toBe(30 * 86_400);
    expect(rateQuantity({ model: 'per_unit', unitPrice: '8.00' }, result.quantity).amount).toBe('84.00');
  });

  it('removals count down; the quantity keeps 12 decimals and the line rounds once', () => {
    // 10 seats for 15 days, 11 for 5 days, 9 for 10 days: (150 + 55 + 90) / 30 = 9.8333333333333… -> 9.833333333333
    const result = proratedUnits({
      period,
      openingUnits: '10',
      changes: [
        { at: '2026-11-21T00:00:00Z', delta: '-2' },
        { at: '2026-11-16T00:00:00Z', delta: '1' },
      ],
    });
    expect(result.quantity).toBe('9.833333333333');
    expect(result.segments.map((segment) => [segment.units, segment.seconds / 86_400])).toEqual([['10', 15], ['11', 5], ['9', 10]]);
    // 9.833333333333 × 8.00 = 78.666666666664 -> 78.67
    expect(rateQuantity({ model: 'per_unit', unitPrice: '8.00' }, result.quantity).amount).toBe('78.67');
  });

  it('a latest-value series: each level holds from its timestamp on; changes outside the period are folded or ignored', () => {
    // level 3 (set before the period) for 10 days, 5 for 15 days, 2 for 5 days: (30 + 75 + 10) / 30 = 3.8333333333333… -> 3.833333333333
    const result = proratedUnits({
      period,
      changes: [
        { at: '2026-10-20T00:00:00Z', level: '3' },
        { at: '2026-11-11T00:00:00Z', level: '5' },
        { at: '2026-11-26T00:00:00Z', level: '2' },
        { at: '2026-12-01T00:00:00Z', level: '40' },
      ],
    });
    expect(result.quantity).toBe('3.833333333333');
  });

  it('prices the prorated quantity with any quantity model (graduated here)', () => {
    // 2 seats all period + 1 seat for 6 of 30 days = 2.2 seats; first 2 at 10.00, then 7.00: 20.00 + 0.2 × 7.00 = 21.40
    const { quantity } = proratedUnits({ period, openingUnits: '2', changes: [{ at: '2026-11-25T00:00:00Z', delta: '1' }] });
    expect(quantity).toBe('2.2');
    expect(rateQuantity({ model: 'graduated', tiers: [{ upTo: '2', unitPrice: '10' }, { upTo: null, unitPrice: '7' }] }, quantity).amount).toBe('21.40');
  });

  it('refuses a level below zero and a change with both delta and level', () => {
    expect(() => proratedUnits({ period, openingUnits: '1', changes: [{ at: '2026-11-02T00:00:00Z', delta: '-2' }] })).toThrow(SeatProrationError);
    expect(() => proratedUnits({ period, changes: [{ at: '2026-11-02T00:00:00Z', delta: '1', level: '1' }] })).toThrow('exactly one of delta and level');
  });
});

describe('block sizes per tier', () => {
  it('graduated: each tier counts its own units in blocks, rounding up per tier', () => {
    // first 1,000 units in blocks of 100 at 1.00 a block, then blocks of 1,000 at 1.00
    // 5,325 = 1,000 (10 blocks = 10.00) + 4,325 (5 started blocks = 5.00) = 15.00
    const price: PriceModel = { model: 'graduated', tiers: [{ upTo: '1000', unitPrice: '1', blockSize: '100' }, { upTo: null, unitPrice: '1', blockSize: '1000' }] };
    const line = rateQuantity(price, '5325');
    expect(line.amount).toBe('15.00');
    expect(line.breakdown).toMatchObject({
      tiers: [
        { units: '1000', blockSize: '100', blocks: '10', amount: '10' },
        { units: '4325', blockSize: '1000', blocks: '5', amount: '5' },
      ],
    });
    // 250 units: 3 started blocks of the first tier = 3.00
    expect(rateQuantity(price, '250').amount).toBe('3.00');
  });

  it('volume: the tier the quantity falls in counts the whole quantity in its blocks', () => {
    // 101,001 units fall in the third tier: 102 started blocks of 1,000 at 0.50 = 51.00
    const price: PriceModel = {
      model: 'volume',
      tiers: [
        { upTo: '1000', unitPrice: '1', blockSize: '100' },
        { upTo: '101000', unitPrice: '1', blockSize: '1000' },
        { upTo: null, unitPrice: '0.5', blockSize: '1000' },
      ],
    };
    expect(rateQuantity(price, '101001').amount).toBe('51.00');
    expect(rateQuantity(price, '101000').amount).toBe('101.00');
  });

  it('mixes block and unit tiers; a block price with more digits rounds once on the line', () => {
    // 3 started blocks of 10 at 0.125 = 0.375, then 5 units at 0.01 = 0.05: 0.425 -> 0.43
    const price: PriceModel = { model: 'graduated', tiers: [{ upTo: '30', unitPrice: '0.125', blockSize: '10' }, { upTo: null, unitPrice: '0.01' }] };
    expect(rateQuantity(price, '35').amount).toBe('0.43');
    expect(validateCharge({ metricCode: 'm', price: { model: 'volume', tiers: [{ upTo: null, unitPrice: '1', blockSize: '0' }] } })).toEqual(['price.tiers[0].blockSize must be greater than 0']);
  });
});

describe('first tier flat fee at zero usage', () => {
  const graduated: PriceModel = { model: 'graduated', tiers: [{ upTo: '10', unitPrice: '10', flatFee: '2' }, { upTo: null, unitPrice: '5', flatFee: '3' }] };
  const volume: PriceModel = { model: 'volume', tiers: [{ upTo: '100', unitPrice: '2', flatFee: '10' }, { upTo: null, unitPrice: '1' }] };

  it('bills the first tier flat fee at zero usage when the charge asks for it', () => {
    const line = rateQuantity(graduated, '0', { firstTierFeeAtZeroUsage: true });
    expect(line.amount).toBe('2.00');
    expect(line.breakdown).toMatchObject({ model: 'graduated', tiers: [{ from: '0', to: '10', units: '0', flatFee: '2', amount: '2' }] });
    expect(rateQuantity(volume, '0', { firstTierFeeAtZeroUsage: true }).amount).toBe('10.00');
  });

  it('by default zero usage bills nothing (unchanged), and usage above zero rates as before', () => {
    expect(rateQuantity(graduated, '0').amount).toBe('0.00');
    // 1 unit: 10 + 2 = 12.00, with or without the option
    expect(rateQuantity(graduated, '1', { firstTierFeeAtZeroUsage: true }).amount).toBe('12.00');
  });

  it('counts the billable quantity: usage absorbed by included units is zero usage', () => {
    expect(rateQuantity(graduated, '4', { firstTierFeeAtZeroUsage: true, includedUnits: '5' }).amount).toBe('2.00');
  });

  it('applies to graduated and volume only', () => {
    expect(validateCharge({ metricCode: 'm', price: { model: 'per_unit', unitPrice: '1' }, firstTierFeeAtZeroUsage: true })).toEqual([
      'firstTierFeeAtZeroUsage applies to graduated and volume pricing only, not per_unit',
    ]);
  });
});

describe('the BigInt fast path', () => {
  it('leaves every charge that uses the new options to the Decimal path', () => {
    const charges: Charge[] = [
      { metricCode: 'm', price: { model: 'per_unit', unitPrice: '1' }, minAmount: '1' },
      { metricCode: 'm', price: { model: 'graduated', tiers: [{ upTo: null, unitPrice: '1', flatFee: '1' }] }, firstTierFeeAtZeroUsage: true },
      { metricCode: 'm', price: { model: 'volume', tiers: [{ upTo: null, unitPrice: '1', blockSize: '10' }] } },
      { metricCode: 'm', price: { model: 'percentage', rate: '0.1', freeEvents: '1' } },
    ];
    for (const charge of charges) expect(rateChargeInFixedPoint(charge, { metricCode: 'm', quantity: '1', eventValues: ['1'] }, 2)).toBeUndefined();
    expect(rateChargeInFixedPoint({ metricCode: 'm', price: { model: 'per_unit', unitPrice: '1' } }, { metricCode: 'm', quantity: '1' }, 2)).toBeDefined();
  });
});

test('first_tier_fee_at_zero_usage false is the default on any model', () => {
  expect(validateCharge({ metricCode: 'm', price: { model: 'per_unit', unitPrice: '1' }, firstTierFeeAtZeroUsage: false })).toEqual([]);
  expect(rateChargeInFixedPoint({ metricCode: 'm', price: { model: 'per_unit', unitPrice: '1' }, firstTierFeeAtZeroUsage: false }, { metricCode: 'm', quantity: '2' }, 2)?.line.amount).toBe('2.00');
});

test('commitmentTerms counts the plan fees as billed (each rounded to the currency), only when the plan asks', () => {
  const plan = { currency: 'USD', flat_fee: '9.995', charges: [{ metricCode: 'support', price: { model: 'flat', amount: '10.004' } }], settings: { minimumCommitment: '50.00', commitmentIncludesFees: true } };
  // 9.995 -> 10.00 and 10.004 -> 10.00, as their lines are billed: 20.00 counted
  expect(commitmentTerms(plan)).toEqual({ minimumCommitment: '50.00', feesTowardCommitment: '20' });
  expect(commitmentTerms({ ...plan, settings: { minimumCommitment: '50.00' } })).toEqual({ minimumCommitment: '50.00' });
  expect(commitmentTerms({ ...plan, settings: { commitmentIncludesFees: true } })).toEqual({});
});
