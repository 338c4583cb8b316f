/**
 * Properties of the charge options (fast-check, fixed seed: a failure prints a replayable counterexample):
 * bounds clamp the rated amount, a free allowance never costs more and "0 free events" changes nothing,
 * blocks of 1 on whole quantities are unit pricing, and a constant seat level prorates to itself.
 */
import fc from 'fast-check';
import { Dec } from '../../domain/money';
import type { PercentagePrice, PriceModel, Tier } from '../../domain/price-models';
import { rateUsage, type Charge, type UsageLine } from '../../domain/rating';
import { proratedUnits } from '../../domain/seat-proration';

const RUNS = { numRuns: 300, seed: 20261205 };

const money = fc.integer({ min: 0, max: 100_000 }).map((cents) => new Dec(cents).div(100).toFixed());
const price4 = fc.integer({ min: 0, max: 50_000 }).map((units) => new Dec(units).div(10_000).toFixed());
const wholeQuantity = fc.integer({ min: 0, max: 5_000 }).map(String);
const eventValues = fc.array(fc.integer({ min: 0, max: 1_000_000 }).map((cents) => new Dec(cents).div(100).toFixed()), { maxLength: 12 });

function line(charge: Charge, quantity: string, values?: string[]): UsageLine {
  const result = rateUsage({ currency: 'USD', charges: [charge], usage: [{ metricCode: charge.metricCode, quantity, ...(values ? { eventValues: values } : {}) }] });
  return result.lines[0] as UsageLine;
}

const tiers: fc.Arbitrary<Tier[]> = fc
  .tuple(fc.uniqueArray(fc.integer({ min: 1, max: 2_000 }), { maxLength: 3 }), fc.array(price4, { minLength: 4, maxLength: 4 }))
  .map(([bounds, prices]) => [...bounds.sort((a, b) => a - b).map(String), null].map((upTo, index) => ({ upTo, unitPrice: prices[index] })));

test('min_amount/max_amount clamp the exact amount of the price model', () => {
  fc.assert(
    fc.property(price4, wholeQuantity, money, money, (unitPrice, quantity, a, b) => {
      const [minAmount, maxAmount] = new Dec(a).lte(b) ? [a, b] : [b, a];
      const rated = new Dec(unitPrice).times(quantity);
      const bounded = line({ metricCode: 'm', price: { model: 'per_unit', unitPrice }, minAmount, maxAmount }, quantity);
      expect(new Dec(bounded.breakdown.amount).eq(Dec.min(Dec.max(rated, minAmount), maxAmount))).toBe(true);
      expect(bounded.breakdown.chargeBounds?.ratedAmount).toBe(rated.toFixed());
    }),
    RUNS,
  );
});

test('a free allowance never costs more, and 0 free events changes nothing', () => {
  const percentage = fc.record({ rate: price4.filter((rate) => new Dec(rate).lte(1)), fixedFeePerEvent: money });
  fc.assert(
    fc.property(percentage, eventValues, fc.integer({ min: 0, max: 15 }), money, (base, values, freeEvents, freeValue) => {
      const price: PercentagePrice = { model: 'percentage', ...base };
      const without = new Dec(line({ metricCode: 'm', price }, String(values.length), values).breakdown.amount);
      const withAllowance = line({ metricCode: 'm', price: { ...price, freeEvents: String(freeEvents), freeValue } }, String(values.length), values);
      expect(new Dec(withAllowance.breakdown.amount).lte(without)).toBe(true);
      const noneFree = line({ metricCode: 'm', price: { ...price, freeEvents: '0' } }, String(values.length), values);
      expect(new Dec(noneFree.breakdown.amount).eq(without)).toBe(true);
    }),
    RUNS,
  );
});

test('tiers in blocks of 1 price whole quantities as unit tiers; blocks priced pro rata never cost less', () => {
  fc.assert(
    fc.property(tiers, wholeQuantity, fc.constantFrom<'graduated' | 'volume'>('graduated', 'volume'), fc.integer({ min: 2, max: 50 }), (table, quantity, model, size) => {
      const unit = new Dec(line({ metricCode: 'm', price: { model, tiers: table } as PriceModel }, quantity).breakdown.amount);
      const ones = line({ metricCode: 'm', price: { model, tiers: table.map((tier) => ({ ...tier, blockSize: '1' })) } as PriceModel }, quantity);
      expect(new Dec(ones.breakdown.amount).eq(unit)).toBe(true);
      // A block of `size` units priced at `size` unit prices: rounding up to whole blocks can only add.
      const blockTiers = table.map((tier) => ({ ...tier, unitPrice: new Dec(tier.unitPrice).times(size).toFixed(), blockSize: String(size) }));
      const blocks = line({ metricCode: 'm', price: { model, tiers: blockTiers } as PriceModel }, quantity);
      expect(new Dec(blocks.breakdown.amount).gte(unit)).toBe(true);
    }),
    RUNS,
  );
});

test('a constant seat level prorates to itself; a change at the period start is the opening level', () => {
  const period = { start: '2026-11-01T00:00:00Z', end: '2026-12-01T00:00:00Z' };
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 100 }), (level, added) => {
      expect(proratedUnits({ period, openingUnits: String(level), changes: [] }).quantity).toBe(String(level));
      expect(proratedUnits({ period, openingUnits: String(level), changes: [{ at: period.start, delta: String(added) }] }).quantity).toBe(String(level + added));
    }),
    RUNS,
  );
});
