/**
 * `rating.lines`: usage line items rated per second by `rateUsage` (domain/rating.ts) for a plan mixing
 * graduated (with included units and tier flat fees), volume, package, per-unit and percentage (outcome)
 * charges, beside the same line math in BigInt fixed point (bench/integer-rating.ts) in the same run.
 * Pure CPU, one core: no database, no I/O.
 */
import { rateUsage, type Charge, type RatingInput } from '../domain/rating';
import { rateUsageInBigInt } from './integer-rating';
import { Benchmark, progress } from './report';

const INPUT_COUNT = 1_000;
/** Per-event values each percentage line prices (each one a multiply and a min/max clamp). */
const EVENTS_PER_PERCENTAGE_LINE = 20;
const ROUNDS = 3;
const ROUND_SECONDS = 1;

const CHARGES: readonly Charge[] = [
  {
    chargeId: 'tokens',
    metricCode: 'tokens',
    displayName: 'LLM tokens (thousands)',
    includedUnits: '100',
    price: {
      model: 'graduated',
      tiers: [
        { upTo: '1000', unitPrice: '0.10', flatFee: '5' },
        { upTo: '5000', unitPrice: '0.08', flatFee: '10' },
        { upTo: null, unitPrice: '0.05', flatFee: '20' },
      ],
    },
  },
  {
    chargeId: 'seats',
    metricCode: 'seats',
    price: {
      model: 'volume',
      tiers: [
        { upTo: '10', unitPrice: '12.00' },
        { upTo: '100', unitPrice: '9.50', flatFee: '25' },
        { upTo: null, unitPrice: '7.25', flatFee: '100' },
      ],
    },
  },
  { chargeId: 'sms', metricCode: 'sms', price: { model: 'package', packageSize: '100', packagePrice: '2.50' } },
  { chargeId: 'api_calls', metricCode: 'api_calls', price: { model: 'per_unit', unitPrice: '0.000375' } },
  {
    chargeId: 'payments',
    metricCode: 'payments',
    price: { model: 'percentage', rate: '0.029', minFee: '0.30', maxFee: '15.00', fixedFeePerEvent: '0.25' },
  },
];

/** Deterministic, varied usage, so every tier and clamp is exercised and nothing is answered from a cache. */
function ratingInputs(): RatingInput[] {
  return Array.from({ length: INPUT_COUNT }, (_, index) => {
    const eventValues = Array.from({ length: EVENTS_PER_PERCENTAGE_LINE }, (_, event) => {
      const cents = ((index + 1) * 7919 * (event + 3)) % 90_000; // 0.00 .. 899.99
      return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
    });
    return {
      currency: 'USD',
      charges: CHARGES,
      usage: [
        { metricCode: 'tokens', quantity: String((index * 37) % 12_000) },
        { metricCode: 'seats', quantity: String((index * 13) % 250) },
        { metricCode: 'sms', quantity: String((index * 997) % 100_000) },
        { metricCode: 'api_calls', quantity: String(index * 104_729) },
        { metricCode: 'payments', quantity: String(eventValues.length), eventValues },
      ],
    };
  });
}

/** Lines rated per second in one timed round of about `seconds`. */
function timedRound(rateAll: (inputs: readonly RatingInput[]) => number, inputs: readonly RatingInput[], seconds: number): number {
  let lines = 0;
  let elapsed = 0;
  const startedAt = process.hrtime.bigint();
  while (elapsed < seconds) {
    lines += rateAll(inputs);
    elapsed = Number(process.hrtime.bigint() - startedAt) / 1e9;
  }
  return lines / elapsed;
}

let sink = 0; // keeps results observable so the JIT cannot drop the work

function rateAllWithEngine(inputs: readonly RatingInput[]): number {
  let lines = 0;
  for (const input of inputs) {
    const result = rateUsage(input);
    lines += result.lines.length;
    sink += result.subtotal.length;
  }
  return lines;
}

function rateAllInBigInt(inputs: readonly RatingInput[]): number {
  let lines = 0;
  for (const input of inputs) {
    const amounts = rateUsageInBigInt(input);
    lines += amounts.length;
    sink += amounts[0].length;
  }
  return lines;
}

/** The baseline is only worth comparing if it computes the same amounts. */
function expectSameAmounts(inputs: readonly RatingInput[]): void {
  for (const [index, input] of inputs.entries()) {
    const ours = rateUsage(input).lines.map((line) => line.amount);
    const baseline = rateUsageInBigInt(input);
    if (ours.join(',') !== baseline.join(',')) {
      throw new Error(`baseline disagrees with rateUsage on input ${index}: ${baseline.join(',')} vs ${ours.join(',')}`);
    }
  }
}

export const ratingLines: Benchmark = {
  name: 'rating.lines',
  group: 'rating',
  needsStack: false,
  async run() {
    const inputs = ratingInputs();
    expectSameAmounts(inputs);
    progress(`rating.lines: ${inputs.length} inputs x ${CHARGES.length} charges, best of ${ROUNDS} x ${ROUND_SECONDS} s each`);
    // Warm both up before either is timed, then alternate rounds so drift on a shared machine hits both alike;
    // keep each one's best round (the least disturbed by the rest of the machine).
    timedRound(rateAllWithEngine, inputs, 0.5);
    timedRound(rateAllInBigInt, inputs, 0.5);
    let ours = 0;
    let baseline = 0;
    for (let round = 0; round < ROUNDS; round += 1) {
      ours = Math.max(ours, timedRound(rateAllWithEngine, inputs, ROUND_SECONDS));
      baseline = Math.max(baseline, timedRound(rateAllInBigInt, inputs, ROUND_SECONDS));
    }
    progress(`  rateUsage ${Math.round(ours)} lines/s, BigInt ${Math.round(baseline)} lines/s (sink ${sink % 10})`);
    return [
      {
        name: 'rating.lines',
        value: ours,
        unit: 'lines/s',
        baseline: { name: 'rating.lines.bigint_fixed_point', value: baseline },
      },
    ];
  },
};
