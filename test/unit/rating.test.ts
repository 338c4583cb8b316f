import { Dec } from '../../domain/money';
import type { PriceModel, Tier } from '../../domain/price-models';
import {
  CREDIT_LINE_DESCRIPTION,
  RatingError,
  TRUE_UP_LINE_DESCRIPTION,
  flatFeeLine,
  previewCost,
  rateUsage,
  type Charge,
  type RatedLine,
  type RatingInput,
  type UsageLine,
} from '../../domain/rating';

/** Rates one charge on one quantity and returns its usage line. */
function rateOne(price: PriceModel, quantity: string, extra: Partial<Charge> = {}, currency = 'USD'): UsageLine {
  const result = rateUsage({
    currency,
    charges: [{ metricCode: 'm', price, ...extra }],
    usage: [{ metricCode: 'm', quantity }],
  });
  return onlyUsageLine(result.lines);
}

function onlyUsageLine(lines: readonly RatedLine[]): UsageLine {
  expect(lines).toHaveLength(1);
  const [line] = lines;
  if (line.kind !== 'usage') throw new Error(`expected a usage line, got ${line.kind}`);
  return line;
}

function lineOfKind<K extends RatedLine['kind']>(lines: readonly RatedLine[], kind: K): Extract<RatedLine, { kind: K }> {
  const line = lines.find((candidate) => candidate.kind === kind);
  if (line === undefined) throw new Error(`no ${kind} line`);
  return line as Extract<RatedLine, { kind: K }>;
}

function expectRatingError(run: () => unknown, code: string): void {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(RatingError);
    expect((error as RatingError).code).toBe(code);
    return;
  }
  throw new Error(`expected RatingError ${code}, nothing was thrown`);
}

describe('per_unit', () => {
  it('charges unit price × quantity', () => {
    // 1,234 × 0.02 = 24.68
    expect(rateOne({ model: 'per_unit', unitPrice: '0.02' }, '1234').amount).toBe('24.68');
  });

  it('prices a fixed fee per outcome as per_unit over a count metric', () => {
    // 37 resolved tickets × 0.99 = 36.63
    const line = rateOne({ model: 'per_unit', unitPrice: '0.99' }, '37', { displayName: 'Resolved tickets' });
    expect(line).toMatchObject({ description: 'Resolved tickets', quantity: '37', amount: '36.63' });
  });

  it('rates zero usage to a zero line', () => {
    expect(rateOne({ model: 'per_unit', unitPrice: '0.02' }, '0').amount).toBe('0.00');
  });
});

describe('graduated', () => {
  const tiers: Tier[] = [
    { upTo: '1000', unitPrice: '0.10', flatFee: '5' },
    { upTo: '5000', unitPrice: '0.08', flatFee: '10' },
    { upTo: null, unitPrice: '0.05', flatFee: '20' },
  ];
  const graduated: PriceModel = { model: 'graduated', tiers };

  it('prices each tier separately and adds each entered tier’s flat fee, tier by tier in the breakdown', () => {
    // tier 1: 1,000 × 0.10 = 100 + 5  = 105
    // tier 2: 4,000 × 0.08 = 320 + 10 = 330
    // tier 3: 2,500 × 0.05 = 125 + 20 = 145
    //                                   580.00
    const line = rateOne(graduated, '7500');
    expect(line.amount).toBe('580.00');
    expect(line.breakdown).toEqual({
      model: 'graduated',
      includedUnits: '0',
      billableQuantity: '7500',
      amount: '580',
      tiers: [
        { from: '0', to: '1000', units: '1000', unitPrice: '0.1', flatFee: '5', amount: '105' },
        { from: '1000', to: '5000', units: '4000', unitPrice: '0.08', flatFee: '10', amount: '330' },
        { from: '5000', to: null, units: '2500', unitPrice: '0.05', flatFee: '20', amount: '145' },
      ],
    });
  });

  it('charges no flat fee for a tier the quantity does not reach (exactly upTo stays in the tier)', () => {
    // 1,000 × 0.10 + 5 = 105; tier 2 holds no units, so its 10 flat fee is not charged
    const line = rateOne(graduated, '1000');
    expect(line.amount).toBe('105.00');
    expect(line.breakdown.model === 'graduated' && line.breakdown.tiers).toHaveLength(1);
  });

  it('enters the next tier with its first (fractional) unit', () => {
    // 105 + (0.5 × 0.08 + 10 = 10.04) = 115.04
    expect(rateOne(graduated, '1000.5').amount).toBe('115.04');
  });

  it('rates zero usage to zero, without any flat fee', () => {
    const line = rateOne(graduated, '0');
    expect(line.amount).toBe('0.00');
    expect(line.breakdown).toMatchObject({ model: 'graduated', tiers: [] });
  });

  it('rounds the line once, not each tier', () => {
    // 1 × 0.005 + 1 × 0.005 = 0.010 → 0.01 (rounding each tier first would give 0.02)
    const price: PriceModel = {
      model: 'graduated',
      tiers: [
        { upTo: '1', unitPrice: '0.005' },
        { upTo: null, unitPrice: '0.005' },
      ],
    };
    const line = rateOne(price, '2');
    expect(line.amount).toBe('0.01');
    expect(line.breakdown.amount).toBe('0.01');
  });
});

describe('volume', () => {
  const volume: PriceModel = {
    model: 'volume',
    tiers: [
      { upTo: '100', unitPrice: '1.00' },
      { upTo: '1000', unitPrice: '0.80', flatFee: '25' },
      { upTo: null, unitPrice: '0.50' },
    ],
  };

  it('prices a quantity exactly at upTo in that tier', () => {
    // 100 is in (0, 100]: 100 × 1.00 = 100.00
    const line = rateOne(volume, '100');
    expect(line.amount).toBe('100.00');
    expect(line.breakdown).toMatchObject({
      model: 'volume',
      tier: { from: '0', to: '100', units: '100', unitPrice: '1', flatFee: '0', amount: '100' },
    });
  });

  it('prices the whole quantity at the next tier once past the boundary, plus that tier’s flat fee', () => {
    // 101 × 0.80 = 80.80 + 25 = 105.80
    const line = rateOne(volume, '101');
    expect(line.amount).toBe('105.80');
    expect(line.breakdown).toMatchObject({ model: 'volume', tier: { from: '100', to: '1000', units: '101' } });
  });

  it('uses the open-ended last tier above the last bound', () => {
    // 2,000 × 0.50 = 1,000.00
    expect(rateOne(volume, '2000').amount).toBe('1000.00');
  });

  it('rates zero usage to zero with no tier applied', () => {
    const line = rateOne(volume, '0');
    expect(line.amount).toBe('0.00');
    expect(line.breakdown).toMatchObject({ model: 'volume', tier: null });
  });
});

describe('package', () => {
  const perThousand: PriceModel = { model: 'package', packageSize: '1000', packagePrice: '5' };

  it('charges every started package', () => {
    // 1,001 units = 1 full + 1 started package → 2 × 5 = 10.00
    const line = rateOne(perThousand, '1001');
    expect(line.amount).toBe('10.00');
    expect(line.breakdown).toMatchObject({ model: 'package', packageSize: '1000', packagePrice: '5', packages: '2' });
  });

  it('charges exactly full packages without an extra one', () => {
    expect(rateOne(perThousand, '1000').amount).toBe('5.00');
  });

  it('charges nothing for zero units', () => {
    expect(rateOne(perThousand, '0').breakdown).toMatchObject({ packages: '0', amount: '0' });
  });
});

describe('percentage (outcome pricing)', () => {
  const price: PriceModel = { model: 'percentage', rate: '0.025', minFee: '0.50', maxFee: '10.00', fixedFeePerEvent: '0.30' };

  it('bounds each event’s percentage fee by min and max, then adds the fixed fee per event', () => {
    //    10.00 × 2.5 % =  0.25 → raised to min 0.50
    //   100.00 × 2.5 % =  2.50
    // 1,000.00 × 2.5 % = 25.00 → capped at max 10.00
    //   400.00 × 2.5 % = 10.00 (exactly max: not capped)
    // percentage fees 0.50 + 2.50 + 10.00 + 10.00 = 23.00; fixed 4 × 0.30 = 1.20; total 24.20
    const result = rateUsage({
      currency: 'USD',
      charges: [{ metricCode: 'recovered_revenue', price }],
      usage: [{ metricCode: 'recovered_revenue', quantity: '4', eventValues: ['10.00', '100.00', '1000.00', '400.00'] }],
    });
    const line = onlyUsageLine(result.lines);
    expect(line.amount).toBe('24.20');
    expect(line.quantity).toBe('4');
    expect(line.breakdown).toEqual({
      model: 'percentage',
      rate: '0.025',
      minFee: '0.5',
      maxFee: '10',
      fixedFeePerEvent: '0.3',
      eventCount: 4,
      valueTotal: '1510',
      valueAtRate: '500', // 100 + 400: check 500 × 0.025 + 1 × 0.50 + 1 × 10.00 = 23.00
      eventsAtMinimum: 1,
      eventsAtMaximum: 1,
      percentageFees: '23',
      fixedFees: '1.2',
      amount: '24.2',
    });
  });

  it('rates a charge without usage as zero events', () => {
    const result = rateUsage({ currency: 'USD', charges: [{ metricCode: 'recovered_revenue', price }], usage: [] });
    expect(onlyUsageLine(result.lines).breakdown).toMatchObject({ eventCount: 0, amount: '0' });
  });

  it('needs the per-event values, agreeing with the quantity', () => {
    const charges: Charge[] = [{ metricCode: 'r', price }];
    expectRatingError(() => rateUsage({ currency: 'USD', charges, usage: [{ metricCode: 'r', quantity: '2' }] }), 'missing_event_values');
    expectRatingError(
      () => rateUsage({ currency: 'USD', charges, usage: [{ metricCode: 'r', quantity: '3', eventValues: ['1', '2'] }] }),
      'event_count_mismatch',
    );
    expectRatingError(
      () => rateUsage({ currency: 'USD', charges, usage: [{ metricCode: 'r', quantity: '1', eventValues: ['-5'] }] }),
      'invalid_event_value',
    );
  });
});

describe('included units', () => {
  it('makes the first N units of the period free', () => {
    // (1,500 − 1,000) × 0.02 = 10.00
    const line = rateOne({ model: 'per_unit', unitPrice: '0.02' }, '1500', { includedUnits: '1000' });
    expect(line.amount).toBe('10.00');
    expect(line.quantity).toBe('1500');
    expect(line.breakdown).toMatchObject({ includedUnits: '1000', billableQuantity: '500' });
  });

  it('never bills below zero when usage stays inside the allowance', () => {
    const line = rateOne({ model: 'per_unit', unitPrice: '0.02' }, '800', { includedUnits: '1000' });
    expect(line.amount).toBe('0.00');
    expect(line.breakdown).toMatchObject({ billableQuantity: '0' });
  });

  it('reduces the quantity before the tiers: billable units start at tier 1', () => {
    // billable 1,200 − 100 = 1,100 → 1,000 × 0.10 + 100 × 0.05 = 105.00
    // (if the allowance consumed tier 1 instead it would be 900 × 0.10 + 200 × 0.05 = 100.00)
    const price: PriceModel = {
      model: 'graduated',
      tiers: [
        { upTo: '1000', unitPrice: '0.10' },
        { upTo: null, unitPrice: '0.05' },
      ],
    };
    expect(rateOne(price, '1200', { includedUnits: '100' }).amount).toBe('105.00');
  });

  it('applies before packaging', () => {
    // 2,500 − 1,000 = 1,500 billable → 2 started packages × 5 = 10.00
    const line = rateOne({ model: 'package', packageSize: '1000', packagePrice: '5' }, '2500', { includedUnits: '1000' });
    expect(line.amount).toBe('10.00');
  });
});

describe('credit bucket (usage included in the plan fee)', () => {
  const charges: Charge[] = [
    { metricCode: 'api_calls', chargeId: 'c-api', price: { model: 'per_unit', unitPrice: '0.001' } },
    { metricCode: 'storage_gb', chargeId: 'c-storage', price: { model: 'per_unit', unitPrice: '0.20' } },
  ];

  it('covers usage below the bucket and reports the remainder', () => {
    // usage 12,000 × 0.001 = 12.00; bucket 20.00 → credit −12.00, 8.00 left, invoice 0.00
    const result = rateUsage({ currency: 'USD', charges, usage: [{ metricCode: 'api_calls', quantity: '12000' }], creditBucket: '20.00' });
    const credit = lineOfKind(result.lines, 'credit');
    expect(credit).toMatchObject({ description: CREDIT_LINE_DESCRIPTION, amount: '-12.00' });
    expect(result).toMatchObject({ usageTotal: '12.00', subtotal: '0.00', creditApplied: '12.00', creditRemaining: '8.00' });
  });

  it('is used up by larger usage, allocated in charge order, and the rest is overage', () => {
    // api 12.00 + storage 50 × 0.20 = 10.00 → usage 22.00; credit −20.00 (12.00 api, 8.00 storage); due 2.00
    const result = rateUsage({
      currency: 'USD',
      charges,
      usage: [
        { metricCode: 'storage_gb', quantity: '50' },
        { metricCode: 'api_calls', quantity: '12000' },
      ],
      creditBucket: '20',
    });
    expect(result.lines.map((line) => [line.kind, line.amount])).toEqual([
      ['usage', '12.00'],
      ['usage', '10.00'],
      ['credit', '-20.00'],
    ]);
    expect(lineOfKind(result.lines, 'credit').breakdown).toEqual({
      bucket: '20.00',
      applied: '20.00',
      remaining: '0.00',
      allocations: [
        { metricCode: 'api_calls', chargeId: 'c-api', amount: '12.00' },
        { metricCode: 'storage_gb', chargeId: 'c-storage', amount: '8.00' },
      ],
    });
    expect(result).toMatchObject({ subtotal: '2.00', creditApplied: '20.00', creditRemaining: '0.00' });
  });

  it('adds no credit line when there is no usage to cover', () => {
    const result = rateUsage({ currency: 'USD', charges, usage: [], creditBucket: '20.00' });
    expect(result.lines.every((line) => line.kind === 'usage')).toBe(true);
    expect(result).toMatchObject({ subtotal: '0.00', creditApplied: '0.00', creditRemaining: '20.00' });
  });

  it('refuses a bucket finer than the currency’s minor unit', () => {
    expectRatingError(() => rateUsage({ currency: 'USD', charges, usage: [], creditBucket: '20.005' }), 'invalid_money_amount');
    expectRatingError(() => rateUsage({ currency: 'USD', charges, usage: [], creditBucket: '-1' }), 'invalid_money_amount');
  });
});

describe('minimum commitment', () => {
  const charges: Charge[] = [{ metricCode: 'api_calls', price: { model: 'per_unit', unitPrice: '0.01' } }];
  const usage = [{ metricCode: 'api_calls', quantity: '6000' }]; // 6,000 × 0.01 = 60.00

  it('adds a true-up line for the shortfall', () => {
    // commitment 100.00 − usage 60.00 = 40.00
    const result = rateUsage({ currency: 'USD', charges, usage, minimumCommitment: '100.00' });
    const trueUp = lineOfKind(result.lines, 'commitment_true_up');
    expect(trueUp).toMatchObject({ description: TRUE_UP_LINE_DESCRIPTION, amount: '40.00' });
    expect(trueUp.breakdown).toEqual({ minimumCommitment: '100.00', usageTotal: '60.00', shortfall: '40.00' });
    expect(result.subtotal).toBe('100.00');
  });

  it('adds nothing when usage meets the commitment', () => {
    const result = rateUsage({ currency: 'USD', charges, usage, minimumCommitment: '60.00' });
    expect(result.lines.map((line) => line.kind)).toEqual(['usage']);
  });

  it('measures usage before the credit bucket, and the credit does not reduce the true-up', () => {
    // usage 60.00; credit −20.00; shortfall 100.00 − 60.00 = 40.00 → due 60 − 20 + 40 = 80.00
    const result = rateUsage({ currency: 'USD', charges, usage, creditBucket: '20.00', minimumCommitment: '100.00' });
    expect(result.lines.map((line) => [line.kind, line.amount])).toEqual([
      ['usage', '60.00'],
      ['credit', '-20.00'],
      ['commitment_true_up', '40.00'],
    ]);
    expect(result.subtotal).toBe('80.00');
  });
});

describe('rounding: once per line, half-up to the minor unit', () => {
  it('rounds .5 up (USD)', () => {
    expect(rateOne({ model: 'per_unit', unitPrice: '0.125' }, '1').amount).toBe('0.13');
    expect(rateOne({ model: 'per_unit', unitPrice: '0.005' }, '1').amount).toBe('0.01');
    expect(rateOne({ model: 'per_unit', unitPrice: '0.0049' }, '1').amount).toBe('0.00');
  });

  it('rounds JPY to whole yen', () => {
    // 3 × 0.5 = 1.5 → 2; 7 × 0.35 = 2.45 → 2
    expect(rateOne({ model: 'per_unit', unitPrice: '0.5' }, '3', {}, 'JPY').amount).toBe('2');
    expect(rateOne({ model: 'per_unit', unitPrice: '0.35' }, '7', {}, 'JPY').amount).toBe('2');
  });

  it('rounds KWD to three decimals', () => {
    // 3 × 0.0015 = 0.0045 → 0.005; 1.2344 → 1.234
    expect(rateOne({ model: 'per_unit', unitPrice: '0.0015' }, '3', {}, 'KWD').amount).toBe('0.005');
    expect(rateOne({ model: 'per_unit', unitPrice: '1.2344' }, '1', {}, 'KWD').amount).toBe('1.234');
  });

  it('keeps the breakdown at full precision while the line is rounded', () => {
    // 3 × 0.3333 = 0.9999 → 1.00
    const line = rateOne({ model: 'per_unit', unitPrice: '0.3333' }, '3');
    expect(line).toMatchObject({ amount: '1.00', breakdown: { amount: '0.9999' } });
  });

  it('makes the total the sum of the rounded lines', () => {
    // three lines of 5 × 0.001 = 0.005 → 0.01 each; total 0.03 (rounding the exact sum 0.015 would give 0.02)
    const price: PriceModel = { model: 'per_unit', unitPrice: '0.001' };
    const result = rateUsage({
      currency: 'USD',
      charges: ['a', 'b', 'c'].map((metricCode) => ({ metricCode, price })),
      usage: ['a', 'b', 'c'].map((metricCode) => ({ metricCode, quantity: '5' })),
    });
    expect(result.lines.map((line) => line.amount)).toEqual(['0.01', '0.01', '0.01']);
    expect(result.subtotal).toBe('0.03');
  });
});

describe('invoice shape', () => {
  const input: RatingInput = {
    currency: 'EUR',
    charges: [
      { chargeId: 'base', metricCode: 'platform', displayName: 'Platform fee', price: { model: 'flat', amount: '49.00' } },
      { chargeId: 'api', metricCode: 'api_calls', displayName: 'API calls', price: { model: 'per_unit', unitPrice: '0.0004' }, includedUnits: '10000' },
      {
        chargeId: 'seats',
        metricCode: 'seats',
        price: { model: 'graduated', tiers: [{ upTo: '5', unitPrice: '0' }, { upTo: null, unitPrice: '8.50' }] },
      },
      { chargeId: 'tickets', metricCode: 'tickets', price: { model: 'per_unit', unitPrice: '0.99' } },
    ],
    usage: [
      { metricCode: 'api_calls', quantity: '123457' },
      { metricCode: 'seats', quantity: '7' },
      { metricCode: 'unpriced_metric', quantity: '999' },
    ],
    creditBucket: '20.00',
    minimumCommitment: '100.00',
  };

  it('lists usage lines in charge order, skipping flat charges, unpriced usage billed nowhere', () => {
    // api: (123,457 − 10,000) × 0.0004 = 45.3828 → 45.38; seats: 2 × 8.50 = 17.00; tickets: no usage → 0.00
    // usage 62.38; credit −20.00; true-up 100.00 − 62.38 = 37.62; subtotal 80.00
    const result = rateUsage(input);
    expect(result.lines.map((line) => [line.kind, line.chargeId, line.amount])).toEqual([
      ['usage', 'api', '45.38'],
      ['usage', 'seats', '17.00'],
      ['usage', 'tickets', '0.00'],
      ['credit', undefined, '-20.00'],
      ['commitment_true_up', undefined, '37.62'],
    ]);
    expect(result).toEqual(expect.objectContaining({ usageTotal: '62.38', subtotal: '80.00', creditRemaining: '0.00' }));
  });

  it('always sums its lines to its subtotal', () => {
    const result = rateUsage(input);
    const sum = result.lines.reduce((total, line) => total.plus(line.amount), new Dec(0));
    expect(sum.toFixed(2)).toBe(result.subtotal);
  });

  it('gives the same output for the same input', () => {
    expect(JSON.stringify(rateUsage(input))).toBe(JSON.stringify(rateUsage(structuredClone(input))));
  });

  it('previews cost with the same engine', () => {
    expect(previewCost(input)).toEqual(rateUsage(input));
  });

  it('carries no undefined keys (JSON round-trips unchanged)', () => {
    const result = rateUsage(input);
    expect(JSON.parse(JSON.stringify(result))).toStrictEqual(result);
  });
});

describe('flat fee line', () => {
  const charge: Charge = { chargeId: 'base', metricCode: 'platform', displayName: 'Pro plan', price: { model: 'flat', amount: '49.00' } };

  it('bills the full fee', () => {
    expect(flatFeeLine({ currency: 'USD', charge })).toEqual({
      kind: 'flat_fee',
      description: 'Pro plan',
      quantity: '1',
      amount: '49.00',
      chargeId: 'base',
      breakdown: { model: 'flat', fullAmount: '49', prorationFactor: '1', amount: '49' },
    });
  });

  it('prorates by a fraction, rounding once', () => {
    // 49.00 × 15/31 = 23.7096… → 23.71
    const line = flatFeeLine({ currency: 'USD', charge, prorationFactor: new Dec(15).div(31) });
    expect(line).toMatchObject({ description: 'Pro plan (prorated)', amount: '23.71' });
  });

  it('refuses factors outside [0, 1] and non-flat charges', () => {
    expectRatingError(() => flatFeeLine({ currency: 'USD', charge, prorationFactor: new Dec('1.5') }), 'invalid_proration_factor');
    expectRatingError(
      () => flatFeeLine({ currency: 'USD', charge: { metricCode: 'x', price: { model: 'per_unit', unitPrice: '1' } } }),
      'not_a_flat_charge',
    );
  });
});

describe('input validation', () => {
  const charges: Charge[] = [{ metricCode: 'm', price: { model: 'per_unit', unitPrice: '1' } }];
  const rate = (quantity: unknown) =>
    rateUsage({ currency: 'USD', charges, usage: [{ metricCode: 'm', quantity: quantity as string }] });

  it.each([['-1'], ['1e3'], ['1,000'], [' 5'], [''], [5]])('refuses the quantity %p', (quantity) => {
    expectRatingError(() => rate(quantity), 'invalid_quantity');
  });

  it('refuses unsupported currencies', () => {
    expectRatingError(() => rateUsage({ currency: 'usd', charges, usage: [] }), 'unsupported_currency');
  });

  it('refuses the same metric reported twice', () => {
    const usage = [
      { metricCode: 'm', quantity: '1' },
      { metricCode: 'm', quantity: '2' },
    ];
    expectRatingError(() => rateUsage({ currency: 'USD', charges, usage }), 'duplicate_usage');
  });

  it('refuses invalid charges with the reasons in the message', () => {
    const bad: Charge[] = [{ metricCode: 'm', price: { model: 'per_unit', unitPrice: '-1' }, includedUnits: '-5' }];
    try {
      rateUsage({ currency: 'USD', charges: bad, usage: [] });
      throw new Error('expected a RatingError');
    } catch (error) {
      expect(error).toMatchObject({ name: 'RatingError', code: 'invalid_charge' });
      expect((error as Error).message).toContain('price.unitPrice must not be negative');
      expect((error as Error).message).toContain('includedUnits must be a non-negative decimal string');
    }
  });
});
