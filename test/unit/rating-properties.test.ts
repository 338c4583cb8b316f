/**
 * Property-style checks over random tier tables and quantities. The PRNG is seeded, so a failure reproduces;
 * the seed and the case are in the assertion message.
 */
import { Dec } from '../../domain/money';
import type { PriceModel, Tier } from '../../domain/price-models';
import { rateUsage, type Charge, type UsageLine } from '../../domain/rating';
import { seededRandom } from '../support/seeded-random';

function randomInt(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** A decimal string with `scale` fraction digits, built from an integer so no float ever reaches the engine. */
function randomDecimal(random: () => number, maxUnits: number, scale: number): string {
  return new Dec(randomInt(random, 0, maxUnits * 10 ** scale)).div(10 ** scale).toFixed();
}

function randomTiers(random: () => number): Tier[] {
  const count = randomInt(random, 1, 5);
  const tiers: Tier[] = [];
  let bound = 0;
  for (let index = 0; index < count; index += 1) {
    const isLast = index === count - 1;
    bound += randomInt(random, 1, 1000);
    tiers.push({
      upTo: isLast ? null : String(bound),
      unitPrice: randomDecimal(random, 2, 4),
      ...(random() < 0.5 ? { flatFee: randomDecimal(random, 50, 2) } : {}),
    });
  }
  return tiers;
}

function rate(price: PriceModel, quantity: string, currency = 'USD'): UsageLine {
  const charge: Charge = { metricCode: 'm', price };
  const [line] = rateUsage({ currency, charges: [charge], usage: [{ metricCode: 'm', quantity }] }).lines;
  if (line.kind !== 'usage') throw new Error('expected a usage line');
  return line;
}

const SEEDS = [1, 2, 3, 42, 20240601];
const CASES_PER_SEED = 60;

describe.each(SEEDS)('with seed %i', (seed) => {
  it('graduated amount never decreases as quantity grows', () => {
    const random = seededRandom(seed);
    for (let run = 0; run < CASES_PER_SEED; run += 1) {
      const price: PriceModel = { model: 'graduated', tiers: randomTiers(random) };
      const smaller = randomDecimal(random, 4000, 3);
      const larger = new Dec(smaller).plus(randomDecimal(random, 2000, 3)).toFixed();
      const low = rate(price, smaller);
      const high = rate(price, larger);
      const context = JSON.stringify({ seed, run, price, smaller, larger });
      expect({ context, exactGrew: new Dec(high.breakdown.amount).gte(low.breakdown.amount) }).toEqual({ context, exactGrew: true });
      expect({ context, roundedGrew: new Dec(high.amount).gte(low.amount) }).toEqual({ context, roundedGrew: true });
    }
  });

  it('graduated inside tier 1 equals per_unit at the tier-1 price (plus tier 1’s flat fee)', () => {
    const random = seededRandom(seed);
    for (let run = 0; run < CASES_PER_SEED; run += 1) {
      const tiers = randomTiers(random);
      const [first] = tiers;
      const tierOneTop = first.upTo === null ? 10_000 : Number(first.upTo);
      const quantity = new Dec(randomInt(random, 1, tierOneTop * 100)).div(100).toFixed();
      const graduated = rate({ model: 'graduated', tiers }, quantity);
      const perUnitExact = new Dec(quantity).times(first.unitPrice).plus(first.flatFee ?? '0');
      const context = JSON.stringify({ seed, run, tiers, quantity });
      expect({ context, amount: graduated.breakdown.amount }).toEqual({ context, amount: perUnitExact.toFixed() });
      if (first.flatFee === undefined) {
        const perUnit = rate({ model: 'per_unit', unitPrice: first.unitPrice }, quantity);
        expect({ context, amount: graduated.amount }).toEqual({ context, amount: perUnit.amount });
      }
    }
  });

  it('graduated tiers add up: units to the billable quantity, tier amounts to the line', () => {
    const random = seededRandom(seed);
    for (let run = 0; run < CASES_PER_SEED; run += 1) {
      const price: PriceModel = { model: 'graduated', tiers: randomTiers(random) };
      const line = rate(price, randomDecimal(random, 5000, 2));
      if (line.breakdown.model !== 'graduated') throw new Error('expected a graduated breakdown');
      const units = line.breakdown.tiers.reduce((total, tier) => total.plus(tier.units), new Dec(0));
      const amount = line.breakdown.tiers.reduce((total, tier) => total.plus(tier.amount), new Dec(0));
      expect(units.toFixed()).toBe(line.breakdown.billableQuantity);
      expect(amount.toFixed()).toBe(line.breakdown.amount);
    }
  });

  it('an invoice always equals the sum of its lines and is never negative', () => {
    const random = seededRandom(seed);
    for (let run = 0; run < CASES_PER_SEED; run += 1) {
      const currency = ['USD', 'JPY', 'KWD'][randomInt(random, 0, 2)];
      const metrics = ['a', 'b', 'c'];
      const models: PriceModel[] = [
        { model: 'graduated', tiers: randomTiers(random) },
        { model: 'volume', tiers: randomTiers(random) },
        { model: 'package', packageSize: String(randomInt(random, 1, 500)), packagePrice: randomDecimal(random, 20, 3) },
      ];
      const result = rateUsage({
        currency,
        charges: metrics.map((metricCode, index) => ({ metricCode, price: models[index], includedUnits: String(randomInt(random, 0, 300)) })),
        usage: metrics.map((metricCode) => ({ metricCode, quantity: randomDecimal(random, 3000, 2) })),
        creditBucket: String(randomInt(random, 0, 5000)),
        minimumCommitment: String(randomInt(random, 0, 5000)),
      });
      const sum = result.lines.reduce((total, line) => total.plus(line.amount), new Dec(0));
      expect(sum.eq(result.subtotal)).toBe(true);
      expect(new Dec(result.subtotal).gte(0)).toBe(true);
      expect(new Dec(result.creditApplied).plus(result.creditRemaining).gte(0)).toBe(true);
    }
  });
});
