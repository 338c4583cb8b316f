/**
 * Property tests for the rating engine, written with fast-check: random but realistic plans (per_unit,
 * graduated, volume, package and percentage charges, included units, credit buckets, commitments) and usage
 * (integer and decimal quantities up to 6 places, zero, and quantities exactly on, just under and just over a
 * tier or package boundary), in USD (2 minor digits), JPY (0) and KWD (3).
 *
 * Every property runs 200 cases from a fixed seed, so a run is reproducible; on a failure fast-check prints the
 * shrunk counterexample with its seed and path. Worked examples that pin the edges by hand follow the properties.
 */
import fc from 'fast-check';
import { Dec, ZERO, minorUnitExponent } from '../../domain/money';
import type { PriceModel, QuantityPriceModel, Tier } from '../../domain/price-models';
import { rateUsage, type Charge, type RatedLine, type RatingInput, type UsageForCharge, type UsageLine } from '../../domain/rating';

const RUNS = { numRuns: 200, seed: 20240601 };

const CURRENCIES = ['USD', 'JPY', 'KWD'] as const;

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

/** `scaled / 10^scale` written with exactly `scale` fraction digits: (12500n, 3) → "12.500". */
function fromScaled(scaled: bigint, scale: number): string {
  return new Dec(scaled.toString()).div(new Dec(10).pow(scale)).toFixed(scale);
}

/** An amount given in the currency's minor units, written as the engine expects money: (1250, USD) → "12.50". */
function money(minorUnits: number, currency: string): string {
  return fromScaled(BigInt(minorUnits), minorUnitExponent(currency));
}

/** Exactly the currency's minor digits: "12.50" in USD, "1250" in JPY, "12.500" in KWD (a credit line may be negative). */
function moneyShape(currency: string): RegExp {
  const digits = minorUnitExponent(currency);
  return digits === 0 ? /^-?\d+$/ : new RegExp(`^-?\\d+\\.\\d{${digits}}$`);
}

/** Half-up to the currency's minor unit, as a money string: the rounding every line gets once. */
function roundedOnce(exact: string, currency: string): string {
  const digits = minorUnitExponent(currency);
  return new Dec(exact).toDecimalPlaces(digits, Dec.ROUND_HALF_UP).toFixed(digits);
}

function sumOf(amounts: readonly string[]): Dec {
  return amounts.reduce<Dec>((total, amount) => total.plus(amount), ZERO);
}

/** Drops undefined fields, so generated inputs look like JSON does (no `key: undefined`). */
function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as T;
}

function usageLines(lines: readonly RatedLine[]): UsageLine[] {
  return lines.filter((line): line is UsageLine => line.kind === 'usage');
}

/** Rates one charge on one usage entry (or none) and returns its usage line. */
function rateOne(currency: string, charge: Omit<Charge, 'metricCode'>, usage?: Omit<UsageForCharge, 'metricCode'>): UsageLine {
  const result = rateUsage({
    currency,
    charges: [{ metricCode: 'm', ...charge }],
    usage: usage === undefined ? [] : [{ metricCode: 'm', ...usage }],
  });
  const [line] = usageLines(result.lines);
  return line;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    Object.values(value).forEach(deepFreeze);
    Object.freeze(value);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------
// Arbitraries: what a plan author and a meter can send
// ---------------------------------------------------------------------------------------------------------

const currencyArb = fc.constantFrom(...CURRENCIES);

/** A decimal string in [min, max] with 0..maxScale fraction digits, trailing zeros kept: "0", "42", "0.000001", "12.500". */
function decimalArb(max: number, maxScale: number, min = 0): fc.Arbitrary<string> {
  return fc.integer({ min: 0, max: maxScale }).chain((scale) => {
    const unit = 10n ** BigInt(scale);
    const lowest = min === 0 ? 0n : 1n; // min > 0 means "positive": the smallest step at this scale
    return fc.bigInt({ min: lowest, max: BigInt(max) * unit }).map((scaled) => fromScaled(scaled, scale));
  });
}

const unitPriceArb = decimalArb(10, 6); // 0 … 10.000000: API calls at 0.000125, seats at 9.99
const feeArb = decimalArb(50, 3); // flat fees, min/max fees, package prices
const tierWidthArb = fc.oneof(decimalArb(5000, 0, 1), decimalArb(500, 3, 1)); // 1 … 5,000 units, or 0.001 … 500.000
const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

/** 1–4 ascending tiers, the last open-ended; flat fees optional unless `flatFees` is false. */
function tiersArb({ flatFees }: { flatFees: boolean }): fc.Arbitrary<Tier[]> {
  const draftArb = fc.record({
    width: tierWidthArb,
    unitPrice: unitPriceArb,
    flatFee: flatFees ? optional(feeArb) : fc.constant(undefined),
  });
  return fc.array(draftArb, { minLength: 1, maxLength: 4 }).map((drafts) => {
    let upTo = ZERO;
    return drafts.map((draft, index) => {
      upTo = upTo.plus(draft.width);
      const isLast = index === drafts.length - 1;
      return compact({ upTo: isLast ? null : upTo.toFixed(), unitPrice: draft.unitPrice, flatFee: draft.flatFee });
    });
  });
}

const perUnitArb: fc.Arbitrary<QuantityPriceModel> = unitPriceArb.map((unitPrice) => ({ model: 'per_unit', unitPrice }));
const graduatedArb: fc.Arbitrary<QuantityPriceModel> = tiersArb({ flatFees: true }).map((tiers) => ({ model: 'graduated', tiers }));
const volumeArb: fc.Arbitrary<QuantityPriceModel> = tiersArb({ flatFees: true }).map((tiers) => ({ model: 'volume', tiers }));
const packageArb: fc.Arbitrary<QuantityPriceModel> = fc
  .record({ packageSize: fc.oneof(decimalArb(1000, 0, 1), decimalArb(100, 2, 1)), packagePrice: feeArb })
  .map(({ packageSize, packagePrice }) => ({ model: 'package', packageSize, packagePrice }));
const quantityPriceArb = fc.oneof(perUnitArb, graduatedArb, volumeArb, packageArb);

/** "2.5 % (min 0.50, max 10.00) + 0.30 per event", each part optional; the rate is 0 … 10 % with up to 5 decimals. */
const percentagePriceArb: fc.Arbitrary<PriceModel> = fc
  .record({
    rate: fc.integer({ min: 0, max: 10_000 }).map((hundredThousandths) => fromScaled(BigInt(hundredThousandths), 5)),
    bounds: fc.tuple(optional(feeArb), optional(feeArb)),
    fixedFeePerEvent: optional(feeArb),
  })
  .map(({ rate, bounds: [first, second], fixedFeePerEvent }) => {
    const swap = first !== undefined && second !== undefined && new Dec(first).gt(second);
    const [minFee, maxFee] = swap ? [second, first] : [first, second];
    return compact({ model: 'percentage' as const, rate, minFee, maxFee, fixedFeePerEvent });
  });

/** Reported values of outcome events: money with up to 2 decimals, 0 … 10,000. */
const eventValuesArb = fc.array(decimalArb(10_000, 2), { minLength: 0, maxLength: 8 });

/**
 * Where a price changes its mind: 0, each tier's upTo, one and two package sizes, the included allowance; and
 * for each of those one unit over and a millionth either side. Shifted by the included units, so the billable
 * quantity (not only the raw one) lands exactly on the boundary.
 */
function boundaryQuantities(price: QuantityPriceModel, includedUnits: string | undefined): string[] {
  const included = new Dec(includedUnits ?? '0');
  const edges: Dec[] = [ZERO];
  if (price.model === 'graduated' || price.model === 'volume') {
    edges.push(...price.tiers.flatMap((tier) => (tier.upTo === null ? [] : [new Dec(tier.upTo)])));
  }
  if (price.model === 'package') edges.push(new Dec(price.packageSize), new Dec(price.packageSize).times(2));
  const millionth = new Dec('0.000001');
  return edges
    .flatMap((edge) => [edge, edge.plus(1), edge.plus(millionth), edge.minus(millionth)])
    .map((edge) => edge.plus(included))
    .filter((quantity) => quantity.gte(0))
    .map((quantity) => quantity.toFixed());
}

/** A usage quantity for a charge: zero, any decimal up to 6 places, or one on a boundary of its price. */
function quantityArb(price: QuantityPriceModel, includedUnits: string | undefined): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constant('0'), weight: 1 },
    { arbitrary: decimalArb(20_000, 6), weight: 3 },
    { arbitrary: fc.constantFrom(...boundaryQuantities(price, includedUnits)), weight: 3 },
  );
}

/** One priced metric: its charge (without metric code) and the period's usage of it, if any was reported. */
interface MetricDraft {
  readonly charge: Omit<Charge, 'metricCode'>;
  readonly usage?: Omit<UsageForCharge, 'metricCode'>;
}

const quantityMetricArb: fc.Arbitrary<MetricDraft> = fc
  .record({ price: quantityPriceArb, includedUnits: optional(decimalArb(1000, 6)) })
  .chain(({ price, includedUnits }) =>
    optional(quantityArb(price, includedUnits)).map((quantity) => ({
      charge: compact({ price, includedUnits }),
      usage: quantity === undefined ? undefined : { quantity },
    })),
  );

const percentageMetricArb: fc.Arbitrary<MetricDraft> = fc
  .record({ price: percentagePriceArb, eventValues: optional(eventValuesArb) })
  .map(({ price, eventValues }) => ({
    charge: { price },
    usage: eventValues === undefined ? undefined : { quantity: String(eventValues.length), eventValues },
  }));

const metricArb = fc.oneof({ arbitrary: quantityMetricArb, weight: 4 }, { arbitrary: percentageMetricArb, weight: 1 });

/** A whole period: 1–5 charges in a currency, their usage, maybe unpriced usage, a credit bucket and a commitment. */
function invoiceArb(options: { withCreditBucket?: boolean } = {}): fc.Arbitrary<RatingInput> {
  const bucketArb = fc.integer({ min: 0, max: 5_000_000 }); // minor units: up to 50,000.00 USD
  return fc
    .record({
      currency: currencyArb,
      metrics: fc.array(metricArb, { minLength: 1, maxLength: 5 }),
      unpricedQuantity: optional(decimalArb(1000, 6)),
      creditBucket: options.withCreditBucket ? bucketArb : optional(bucketArb),
      minimumCommitment: optional(fc.integer({ min: 0, max: 5_000_000 })),
    })
    .map(({ currency, metrics, unpricedQuantity, creditBucket, minimumCommitment }) => {
      const metricCode = (index: number) => `metric_${index}`;
      const usage: UsageForCharge[] = metrics.flatMap((metric, index) =>
        metric.usage === undefined ? [] : [{ metricCode: metricCode(index), ...metric.usage }],
      );
      if (unpricedQuantity !== undefined) usage.push({ metricCode: 'unpriced_metric', quantity: unpricedQuantity });
      return compact({
        currency,
        charges: metrics.map((metric, index) => ({ chargeId: `charge_${index}`, metricCode: metricCode(index), ...metric.charge })),
        usage,
        creditBucket: creditBucket === undefined ? undefined : money(creditBucket, currency),
        minimumCommitment: minimumCommitment === undefined ? undefined : money(minimumCommitment, currency),
      });
    });
}

/** Any permutation of a list (a shuffled subarray that keeps every element). */
function permutationOf<T>(items: readonly T[]): fc.Arbitrary<T[]> {
  return fc.shuffledSubarray([...items], { minLength: items.length, maxLength: items.length });
}

// ---------------------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------------------

describe('rating properties (fast-check, 200 seeded runs each)', () => {
  it('an invoice subtotal is the sum of its rounded lines, and every amount has exactly the currency’s minor digits', () => {
    fc.assert(
      fc.property(invoiceArb(), (input) => {
        const result = rateUsage(input);
        const { currency } = input;
        const digits = minorUnitExponent(currency);

        for (const amount of [...result.lines.map((line) => line.amount), result.usageTotal, result.subtotal, result.creditApplied, result.creditRemaining]) {
          expect(amount).toMatch(moneyShape(currency));
        }
        expect(result.subtotal).toBe(sumOf(result.lines.map((line) => line.amount)).toFixed(digits));
        expect(result.usageTotal).toBe(sumOf(usageLines(result.lines).map((line) => line.amount)).toFixed(digits));
        // each usage line is its exact amount rounded once, half-up
        for (const line of usageLines(result.lines)) expect(line.amount).toBe(roundedOnce(line.breakdown.amount, currency));
      }),
      RUNS,
    );
  });

  it('graduated pricing with descending tier prices and no flat fees never costs more than per_unit at the first tier’s price', () => {
    const descendingTiersArb = tiersArb({ flatFees: false }).map((tiers) => {
      const prices = tiers.map((tier) => tier.unitPrice).sort((a, b) => new Dec(b).comparedTo(a));
      return tiers.map((tier, index) => ({ ...tier, unitPrice: prices[index] }));
    });
    const caseArb = fc
      .record({ currency: currencyArb, tiers: descendingTiersArb, includedUnits: optional(decimalArb(1000, 6)) })
      .chain((plan) =>
        quantityArb({ model: 'graduated', tiers: plan.tiers }, plan.includedUnits).map((quantity) => ({ ...plan, quantity })),
      );

    fc.assert(
      fc.property(caseArb, ({ currency, tiers, includedUnits, quantity }) => {
        const graduated = rateOne(currency, compact({ price: { model: 'graduated', tiers }, includedUnits }), { quantity });
        const perUnit = rateOne(currency, compact({ price: { model: 'per_unit', unitPrice: tiers[0].unitPrice }, includedUnits }), { quantity });

        expect(new Dec(graduated.breakdown.amount).lte(perUnit.breakdown.amount)).toBe(true);
        expect(new Dec(graduated.amount).lte(perUnit.amount)).toBe(true);
      }),
      RUNS,
    );
  });

  it('a percentage charge does not depend on the order of its events', () => {
    const caseArb = fc
      .record({ currency: currencyArb, price: percentagePriceArb, eventValues: eventValuesArb })
      .chain((plan) => permutationOf(plan.eventValues).map((shuffled) => ({ ...plan, shuffled })));

    fc.assert(
      fc.property(caseArb, ({ currency, price, eventValues, shuffled }) => {
        const quantity = String(eventValues.length);
        const inOrder = rateOne(currency, { price }, { quantity, eventValues });
        const reordered = rateOne(currency, { price }, { quantity, eventValues: shuffled });

        expect(reordered).toStrictEqual(inOrder);
      }),
      RUNS,
    );
  });

  it('an invoice does not depend on the order of its usage entries', () => {
    const caseArb = invoiceArb().chain((input) => permutationOf(input.usage).map((usage) => ({ input, shuffled: { ...input, usage } })));

    fc.assert(
      fc.property(caseArb, ({ input, shuffled }) => {
        expect(rateUsage(shuffled)).toStrictEqual(rateUsage(input));
      }),
      RUNS,
    );
  });

  it('rating is deterministic and leaves its input untouched', () => {
    fc.assert(
      fc.property(invoiceArb(), (input) => {
        const before = structuredClone(input);

        const first = rateUsage(input);
        const second = rateUsage(input);

        expect(second).toStrictEqual(first);
        expect(input).toStrictEqual(before);
        // a deeply frozen copy rates the same: the engine never even tries to write to its input
        expect(rateUsage(deepFreeze(structuredClone(before)))).toStrictEqual(first);
      }),
      RUNS,
    );
  });

  it('a line worth less than half a minor unit rates to zero, and so does the invoice', () => {
    // unit price m × 10^-(digits + 6) and q units: exact amount m·q × 10^-(digits+6) < half a minor unit ⇔ m·q < 500,000
    const caseArb = fc.record({ currency: currencyArb, quantity: fc.integer({ min: 1, max: 1000 }) }).chain((plan) =>
      fc.integer({ min: 0, max: Math.floor(499_999 / plan.quantity) }).map((millionthsOfMinor) => ({ ...plan, millionthsOfMinor })),
    );

    fc.assert(
      fc.property(caseArb, ({ currency, quantity, millionthsOfMinor }) => {
        const unitPrice = fromScaled(BigInt(millionthsOfMinor), minorUnitExponent(currency) + 6);
        const result = rateUsage({
          currency,
          charges: [{ metricCode: 'm', price: { model: 'per_unit', unitPrice } }],
          usage: [{ metricCode: 'm', quantity: String(quantity) }],
        });

        expect(result.lines.map((line) => line.amount)).toEqual([money(0, currency)]);
        expect(result.subtotal).toBe(money(0, currency));
      }),
      RUNS,
    );
  });

  it('a line worth exactly half a minor unit more than n minor units rounds half-up to n + 1', () => {
    // quantities made of 2s and 5s, so exact / quantity is a terminating decimal unit price
    const caseArb = fc.record({
      currency: currencyArb,
      quantity: fc.constantFrom(1, 2, 4, 5, 8, 10, 16, 20, 25, 40, 50, 80, 100, 125),
      minorUnits: fc.integer({ min: 0, max: 100_000 }),
    });

    fc.assert(
      fc.property(caseArb, ({ currency, quantity, minorUnits }) => {
        const exact = new Dec(minorUnits).plus('0.5').div(new Dec(10).pow(minorUnitExponent(currency)));
        const unitPrice = exact.div(quantity).toFixed();
        const line = rateOne(currency, { price: { model: 'per_unit', unitPrice } }, { quantity: String(quantity) });

        expect(line.breakdown.amount).toBe(exact.toFixed());
        expect(line.amount).toBe(money(minorUnits + 1, currency));
      }),
      RUNS,
    );
  });

  it('the credit bucket never makes the subtotal negative and never applies more than the bucket or the usage', () => {
    fc.assert(
      fc.property(invoiceArb({ withCreditBucket: true }), (input) => {
        const result = rateUsage(input);
        const bucket = new Dec(input.creditBucket ?? '0');
        const applied = new Dec(result.creditApplied);

        expect(new Dec(result.subtotal).gte(0)).toBe(true);
        expect(applied.lte(bucket)).toBe(true);
        expect(applied.lte(result.usageTotal)).toBe(true);
        // it covers as much usage as it can, and what it does not cover is left over
        expect(applied.eq(Dec.min(bucket, result.usageTotal))).toBe(true);
        expect(applied.plus(result.creditRemaining).eq(bucket)).toBe(true);
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// Worked examples: the edges pinned by hand (those not already in rating.test.ts)
// ---------------------------------------------------------------------------------------------------------

describe('amounts smaller than the minor unit (worked examples)', () => {
  it('rounds 3 units at 0.0001 USD (0.0003) to 0.00, and the invoice to 0.00', () => {
    const result = rateUsage({
      currency: 'USD',
      charges: [{ metricCode: 'm', price: { model: 'per_unit', unitPrice: '0.0001' } }],
      usage: [{ metricCode: 'm', quantity: '3' }],
    });
    expect(result.lines.map((line) => line.amount)).toEqual(['0.00']);
    expect(result.subtotal).toBe('0.00');
  });

  it('rounds 5 units at 0.001 USD (exactly 0.005) half-up to 0.01, and the invoice to 0.01', () => {
    const result = rateUsage({
      currency: 'USD',
      charges: [{ metricCode: 'm', price: { model: 'per_unit', unitPrice: '0.001' } }],
      usage: [{ metricCode: 'm', quantity: '5' }],
    });
    expect(result.lines.map((line) => line.amount)).toEqual(['0.01']);
    expect(result.subtotal).toBe('0.01');
  });
});

describe('tier edges (worked examples)', () => {
  it('graduated: one whole unit over a boundary is priced in the next tier, which charges its flat fee', () => {
    // tier 1: 1,000 × 0.10 + 5 = 105.00; tier 2: 1 × 0.08 + 10 = 10.08; total 115.08
    const price: PriceModel = {
      model: 'graduated',
      tiers: [
        { upTo: '1000', unitPrice: '0.10', flatFee: '5' },
        { upTo: '5000', unitPrice: '0.08', flatFee: '10' },
        { upTo: null, unitPrice: '0.05', flatFee: '20' },
      ],
    };
    const line = rateOne('USD', { price }, { quantity: '1001' });
    expect(line.amount).toBe('115.08');
    expect(line.breakdown).toMatchObject({
      tiers: [
        { from: '0', to: '1000', units: '1000', amount: '105' },
        { from: '1000', to: '5000', units: '1', amount: '10.08' },
      ],
    });
  });

  describe('with included units, the billable quantity meets the tiers', () => {
    // 100 free units, then first 1,000 billable at 0.10, the rest at 0.05
    const charge = {
      includedUnits: '100',
      price: {
        model: 'graduated',
        tiers: [
          { upTo: '1000', unitPrice: '0.10' },
          { upTo: null, unitPrice: '0.05' },
        ],
      },
    } satisfies Omit<Charge, 'metricCode'>;

    it('bills nothing for usage exactly at the allowance', () => {
      const line = rateOne('USD', charge, { quantity: '100' });
      expect(line).toMatchObject({ amount: '0.00', breakdown: { billableQuantity: '0', tiers: [] } });
    });

    it('bills one unit at the tier-1 price one unit over the allowance', () => {
      expect(rateOne('USD', charge, { quantity: '101' }).amount).toBe('0.10');
    });

    it('keeps a billable quantity exactly at the boundary in tier 1', () => {
      // 1,100 − 100 = 1,000 billable → 1,000 × 0.10 = 100.00
      const line = rateOne('USD', charge, { quantity: '1100' });
      expect(line).toMatchObject({ amount: '100.00', breakdown: { billableQuantity: '1000', tiers: [{ units: '1000' }] } });
    });

    it('moves the first billable unit over the boundary to tier 2', () => {
      // 1,000 × 0.10 + 1 × 0.05 = 100.05
      expect(rateOne('USD', charge, { quantity: '1101' }).amount).toBe('100.05');
    });
  });

  it('volume: a billable quantity exactly at a boundary after the allowance stays in the lower tier', () => {
    // 150 − 50 = 100 billable, in (0, 100] → 100 × 1.00 = 100.00; 151 → 101 × 0.80 = 80.80
    const charge = {
      includedUnits: '50',
      price: {
        model: 'volume',
        tiers: [
          { upTo: '100', unitPrice: '1.00' },
          { upTo: null, unitPrice: '0.80' },
        ],
      },
    } satisfies Omit<Charge, 'metricCode'>;
    expect(rateOne('USD', charge, { quantity: '150' }).amount).toBe('100.00');
    expect(rateOne('USD', charge, { quantity: '151' }).amount).toBe('80.80');
    expect(rateOne('USD', charge, { quantity: '50' }).amount).toBe('0.00');
  });
});
