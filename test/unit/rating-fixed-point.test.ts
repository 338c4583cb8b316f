/**
 * The rating engine's BigInt fast path (domain/fixed-point-rating.ts) gives exactly the line the Decimal
 * price calculators give: amount, quantity and every breakdown string, keys in the same order. Checked over
 * random charges whose values reach the edges of what a decimal string may hold (20 integer and 12 fraction
 * digits), where the Decimal path's 40 significant digits run out and the fast path must step aside.
 */
import fc from 'fast-check';
import { rateChargeInFixedPoint } from '../../domain/fixed-point-rating';
import { Dec, ZERO, formatMoney, isDecimalString, minorUnitExponent } from '../../domain/money';
import { decimalText, pricePercentage, priceQuantity } from '../../domain/price-calculators';
import type { PriceModel, QuantityPriceModel, Tier } from '../../domain/price-models';
import { rateUsage, type Charge, type UsageForCharge, type UsageLine } from '../../domain/rating';

const RUNS = { numRuns: 400, seed: 20261205 };

/** What rating.ts's Decimal path makes of one valid usage charge: the reference the fast path must match. */
function decimalLine(charge: Charge, usage: UsageForCharge | undefined, currency: string): UsageLine {
  const quantity = usage === undefined ? ZERO : new Dec(usage.quantity);
  let breakdown: UsageLine['breakdown'];
  if (charge.price.model === 'percentage') {
    const { amount, detail } = pricePercentage(charge.price, (usage?.eventValues ?? []).map((value) => new Dec(value)));
    breakdown = { ...detail, amount: decimalText(amount) };
  } else {
    const includedUnits = new Dec(charge.includedUnits ?? '0');
    const billableQuantity = Dec.max(ZERO, quantity.minus(includedUnits));
    const { amount, detail } = priceQuantity(charge.price as QuantityPriceModel, billableQuantity);
    breakdown = { ...detail, includedUnits: decimalText(includedUnits), billableQuantity: decimalText(billableQuantity), amount: decimalText(amount) };
  }
  return {
    kind: 'usage',
    description: charge.displayName ?? charge.metricCode,
    metricCode: charge.metricCode,
    quantity: decimalText(quantity),
    amount: formatMoney(new Dec(breakdown.amount), currency),
    ...(charge.chargeId === undefined ? {} : { chargeId: charge.chargeId }),
    breakdown,
  };
}

/** A canonical non-negative decimal string: small and realistic, or as long as the format allows. */
const decimalString = fc
  .tuple(fc.oneof(fc.bigInt(0n, 1_000n), fc.bigInt(0n, 10n ** 8n), fc.bigInt(0n, 10n ** 20n - 1n)), fc.integer({ min: 0, max: 12 }), fc.bigInt(0n, 10n ** 12n - 1n))
  .map(([whole, digits, fraction]) => (digits === 0 ? whole.toString() : `${whole}.${fraction.toString().padStart(12, '0').slice(0, digits)}`));

const positiveDecimalString = decimalString.filter((text) => !new Dec(text).isZero());

/** A fraction in [0, 1] with up to 12 digits. */
const rateString = fc.oneof(fc.constant('1'), fc.constant('0'), fc.bigInt(0n, 10n ** 12n - 1n).map((digits) => `0.${digits.toString().padStart(12, '0')}`.replace(/0+$/, '').replace(/\.$/, '')));

const tiers: fc.Arbitrary<Tier[]> = fc
  .tuple(fc.uniqueArray(positiveDecimalString, { minLength: 0, maxLength: 3, comparator: (a, b) => new Dec(a).eq(b) }), fc.array(fc.tuple(decimalString, fc.option(decimalString, { nil: undefined })), { minLength: 4, maxLength: 4 }))
  .map(([bounds, prices]) => {
    const upTos = [...bounds].sort((a, b) => new Dec(a).comparedTo(b));
    return [...upTos, null].map((upTo, index) => {
      const [unitPrice, flatFee] = prices[index];
      return flatFee === undefined ? { upTo, unitPrice } : { upTo, unitPrice, flatFee };
    });
  });

const quantityPrice: fc.Arbitrary<PriceModel> = fc.oneof(
  decimalString.map((unitPrice) => ({ model: 'per_unit' as const, unitPrice })),
  tiers.map((list) => ({ model: 'graduated' as const, tiers: list })),
  tiers.map((list) => ({ model: 'volume' as const, tiers: list })),
  fc.tuple(positiveDecimalString, decimalString).map(([packageSize, packagePrice]) => ({ model: 'package' as const, packageSize, packagePrice })),
);

const percentagePrice: fc.Arbitrary<PriceModel> = fc
  .tuple(rateString, fc.option(decimalString, { nil: undefined }), fc.option(decimalString, { nil: undefined }), fc.option(decimalString, { nil: undefined }))
  .map(([rate, first, second, fixedFeePerEvent]) => {
    const [minFee, maxFee] = first !== undefined && second !== undefined && new Dec(first).gt(second) ? [second, first] : [first, second];
    return Object.fromEntries(Object.entries({ model: 'percentage', rate, minFee, maxFee, fixedFeePerEvent }).filter(([, value]) => value !== undefined)) as unknown as PriceModel;
  });

const currency = fc.constantFrom('USD', 'JPY', 'KWD');

/** rateUsage's line for this charge is the Decimal one; a line too large for a money string is refused as before. */
function expectRateUsageLine(input: { currency: string; charges: Charge[]; usage: UsageForCharge[] }, expected: UsageLine): void {
  if (!isDecimalString(expected.amount)) {
    expect(() => rateUsage(input)).toThrow(`not a decimal string: ${JSON.stringify(expected.amount)}`);
    return;
  }
  expect(JSON.stringify(rateUsage(input).lines[0])).toBe(JSON.stringify(expected));
}

test('a quantity charge: the fast line is the Decimal line, or the fast path steps aside', () => {
  let taken = 0;
  fc.assert(
    fc.property(quantityPrice, fc.option(decimalString, { nil: undefined }), fc.option(decimalString, { nil: undefined }), currency, (price, includedUnits, quantity, code) => {
      const charge: Charge = includedUnits === undefined ? { metricCode: 'm', chargeId: 'c', price } : { metricCode: 'm', chargeId: 'c', price, includedUnits };
      const usage = quantity === undefined ? undefined : { metricCode: 'm', quantity };
      const expected = decimalLine(charge, usage, code);
      const fast = rateChargeInFixedPoint(charge, usage, minorUnitExponent(code));
      if (fast !== undefined) {
        taken += 1;
        expect(JSON.stringify(fast.line)).toBe(JSON.stringify(expected));
        expect(fast.minor.toString()).toBe(new Dec(expected.amount).times(new Dec(10).pow(minorUnitExponent(code))).toFixed());
      }
      // Whichever path rated it, rateUsage answers the Decimal line.
      expectRateUsageLine({ currency: code, charges: [charge], usage: usage ? [usage] : [] }, expected);
    }),
    RUNS,
  );
  expect(taken).toBeGreaterThan(RUNS.numRuns / 4);
});

test('a percentage charge: the fast line is the Decimal line, or the fast path steps aside', () => {
  let taken = 0;
  fc.assert(
    fc.property(percentagePrice, fc.array(decimalString, { maxLength: 8 }), currency, (price, eventValues, code) => {
      const charge: Charge = { metricCode: 'p', displayName: 'Payments', price };
      const usage = { metricCode: 'p', quantity: String(eventValues.length), eventValues };
      const expected = decimalLine(charge, usage, code);
      const fast = rateChargeInFixedPoint(charge, usage, minorUnitExponent(code));
      if (fast !== undefined) {
        taken += 1;
        expect(JSON.stringify(fast.line)).toBe(JSON.stringify(expected));
      }
      expectRateUsageLine({ currency: code, charges: [charge], usage: [usage] }, expected);
    }),
    RUNS,
  );
  expect(taken).toBeGreaterThan(RUNS.numRuns / 4);
});

test('beyond 40 significant digits the Decimal path rates the line, as it always did', () => {
  // 10^19 units at 12-digit prices: the exact product needs 43 significant digits; Decimal keeps 40.
  const charge: Charge = { metricCode: 'big', price: { model: 'per_unit', unitPrice: '0.123456789012' } };
  const usage = { metricCode: 'big', quantity: '12345678901234567890.123456789012' };
  expect(rateChargeInFixedPoint(charge, usage, 2)).toBeUndefined();
  expect(rateUsage({ currency: 'USD', charges: [charge], usage: [usage] }).lines[0]).toEqual(decimalLine(charge, usage, 'USD'));
});

test('totals from the fast path equal the sum of the rounded lines', () => {
  const charges: Charge[] = [
    { metricCode: 'a', price: { model: 'per_unit', unitPrice: '0.000375' } },
    { metricCode: 'b', price: { model: 'package', packageSize: '100', packagePrice: '2.50' } },
  ];
  const result = rateUsage({ currency: 'USD', charges, usage: [{ metricCode: 'a', quantity: '104729' }, { metricCode: 'b', quantity: '101' }] });
  expect(result.lines.map((line) => line.amount)).toEqual(['39.27', '5.00']);
  expect(result).toMatchObject({ usageTotal: '44.27', subtotal: '44.27', creditApplied: '0.00', creditRemaining: '0.00' });
});
