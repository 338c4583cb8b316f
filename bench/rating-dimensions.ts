/**
 * `rating.dimensions`: one period of a charge with 2,000 dimension combinations (200 models × 10 directions, each
 * with usage), rated by `rateDimensionalUsage` (domain/dimensions.ts), beside today's way to price the same
 * usage in the same run: 2,000 metrics and 2,000 plain charges rated by `rateUsage`. Both must bill the same
 * amounts. Throughput is per CPU second of this process. `rating.dimensions.catalog_check` times the
 * plan-creation check (validation and ambiguity) of the 2,000-price list, with wildcards in it. Pure CPU, one core.
 */
import { rateDimensionalUsage, validateChargeDimensions, type ChargeDimensions, type DimensionalRatingInput } from '../domain/dimensions';
import { rateUsage, type Charge, type RatingInput } from '../domain/rating';
import { Benchmark, progress } from './report';

const MODELS = 200;
const DIRECTIONS = 10;
const ROUNDS = 3;
const ROUND_SECONDS = 1;
const GROUP_BY = ['model', 'direction'];

function unitPrice(model: number, direction: number): string {
  return `0.0000${(model * 7 + direction * 3) % 90 + 10}`;
}

function dimensionalInput(): DimensionalRatingInput {
  const prices: ChargeDimensions['prices'][number][] = [];
  const groups = [];
  for (let model = 0; model < MODELS; model += 1) {
    for (let direction = 0; direction < DIRECTIONS; direction += 1) {
      const match = { model: `m${model}`, direction: `d${direction}` };
      prices.push({ match, price: { model: 'per_unit', unitPrice: unitPrice(model, direction) } });
      groups.push({ dimensions: match, quantity: String(((model + 1) * 104_729 + direction * 7919) % 5_000_000) });
    }
  }
  const dimensions: ChargeDimensions = { groupBy: GROUP_BY, prices, defaultPrice: { model: 'per_unit', unitPrice: '0.00002' }, unmatched: 'list' };
  return {
    currency: 'USD',
    charges: [{ chargeId: 'tokens', metricCode: 'tokens', price: prices[0].price, dimensions }],
    usage: [{ metricCode: 'tokens', quantity: '0', groups }],
    creditBucket: '100.00',
  };
}

/** The same usage, the way a plan had to say it before dimensions: one metric and one charge per combination. */
function plainInput(input: DimensionalRatingInput): RatingInput {
  const charges: Charge[] = [];
  const usage = [];
  for (const group of input.usage[0].groups!) {
    const code = `tokens_${group.dimensions.model}_${group.dimensions.direction}`;
    charges.push({ chargeId: code, metricCode: code, price: { model: 'per_unit', unitPrice: unitPrice(Number(group.dimensions.model.slice(1)), Number(group.dimensions.direction.slice(1))) } });
    usage.push({ metricCode: code, quantity: group.quantity });
  }
  return { currency: 'USD', charges, usage, creditBucket: '100.00' };
}

let sink = 0;

/**
 * Lines per second of this process's CPU time (user + system), not of the wall clock: on the shared machine
 * other processes take the CPU away for whole rounds, which made wall-clock ratios swing from 0.25 to 0.75.
 */
function linesPerSecond(rate: () => number, seconds: number): number {
  let lines = 0;
  const startedAt = process.cpuUsage();
  let elapsed = 0;
  while (elapsed < seconds) {
    lines += rate();
    const used = process.cpuUsage(startedAt);
    elapsed = (used.user + used.system) / 1e6;
  }
  return lines / elapsed;
}

export const ratingDimensions: Benchmark = {
  name: 'rating.dimensions',
  group: 'rating',
  needsStack: false,
  async run() {
    const dimensional = dimensionalInput();
    const plain = plainInput(dimensional);
    const ours = () => {
      const result = rateDimensionalUsage(dimensional);
      sink += result.subtotal.length;
      return result.lines.length;
    };
    const baseline = () => {
      const result = rateUsage(plain);
      sink += result.subtotal.length;
      return result.lines.length;
    };
    const oursAmounts = rateDimensionalUsage(dimensional).lines.map((line) => line.amount).sort().join(',');
    const baselineAmounts = rateUsage(plain).lines.map((line) => line.amount).sort().join(',');
    if (oursAmounts !== baselineAmounts) throw new Error('rating.dimensions: the dimensional charge and the 2,000 plain charges bill different amounts');

    progress(`rating.dimensions: ${MODELS * DIRECTIONS} combinations on one charge vs as many plain charges, best of ${ROUNDS} x ${ROUND_SECONDS} s`);
    linesPerSecond(ours, 0.5);
    linesPerSecond(baseline, 0.5);
    let oursRate = 0;
    let baselineRate = 0;
    for (let round = 0; round < ROUNDS; round += 1) {
      oursRate = Math.max(oursRate, linesPerSecond(ours, ROUND_SECONDS));
      baselineRate = Math.max(baselineRate, linesPerSecond(baseline, ROUND_SECONDS));
    }

    // Plan creation: 2,000 exact prices plus wildcards per model (which the exact ones settle) and per direction.
    const withWildcards: ChargeDimensions = {
      ...dimensional.charges[0].dimensions!,
      prices: [
        ...dimensional.charges[0].dimensions!.prices,
        ...Array.from({ length: MODELS }, (_, model) => ({ match: { model: `m${model}` }, price: { model: 'per_unit' as const, unitPrice: '0.00001' } })),
      ],
    };
    const checkStart = process.hrtime.bigint();
    const errors = validateChargeDimensions(withWildcards, GROUP_BY);
    const checkMs = Number(process.hrtime.bigint() - checkStart) / 1e6;
    if (errors.length) throw new Error(`rating.dimensions: catalog refused: ${errors[0]}`);
    progress(`  dimensional ${Math.round(oursRate)} lines/s, plain charges ${Math.round(baselineRate)} lines/s; catalog check ${checkMs.toFixed(1)} ms (sink ${sink % 10})`);
    return [
      { name: 'rating.dimensions', value: oursRate, unit: 'lines/s', baseline: { name: 'rating.dimensions.plain_charges', value: baselineRate } },
      { name: 'rating.dimensions.catalog_check', value: checkMs, unit: 'ms' },
    ];
  },
};
