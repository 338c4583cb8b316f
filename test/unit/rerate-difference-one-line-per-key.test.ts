/**
 * A re-rating (and a reversed outcome's credit) compares what is billed now with what was billed, per line identity
 * (metric, combination). A plan version stored before a metric could be priced only once (docs/pricing.md
 * "A metric is priced once per plan") rates two usage lines of one metric:
 *
 *   100 calls at 0.10 + 0.05 (two charges on `calls`): lines 10.00 and 5.00, billed 15.00 under `usage:calls`
 *   re-rated unchanged: recomputed 15.00 against 15.00 billed -> nothing to do
 *   before: each line against both billed (10.00 − 15.00, 5.00 − 15.00) -> a credit of 15.00, the whole usage; paid
 *   by the wallet, its two lines of one key broke wallet_draw_lines' unique key and carrying it out failed for good
 *
 *   one call reversed: 9.90 + 4.95 against 15.00 -> a credit of 0.15 (before: 15.15)
 */
import { rerateDifference } from '../../domain/rerating';
import { rateUsage } from '../../domain/rating';
import { reversalCreditLines } from '../../domain/reversal-credits';

const period = { start: '2029-01-01T00:00:00.000Z', end: '2029-02-01T00:00:00.000Z' };
const twoChargesOnCalls = [
  { metricCode: 'calls', price: { model: 'per_unit' as const, unitPrice: '0.10' } },
  { metricCode: 'calls', price: { model: 'per_unit' as const, unitPrice: '0.05' } },
];

test('a plan with two charges on one metric, re-rated unchanged, owes nothing either way', () => {
  const rated = rateUsage({ currency: 'USD', charges: twoChargesOnCalls, usage: [{ metricCode: 'calls', quantity: '100' }] });
  const billed = rated.lines.map((line) => ({ key: 'usage:calls', description: line.description, amount: line.amount }));
  expect(billed.map((line) => line.amount)).toEqual(['10.00', '5.00']);
  expect(rerateDifference(rated.lines, billed, 'USD', period)).toEqual({ lines: [], total: '0.00', outcome: 'none' });
});

test('one reversed call on such a plan credits what that call billed, in one line', () => {
  const lines = reversalCreditLines({
    currency: 'USD',
    charges: twoChargesOnCalls,
    closedUsage: [{ metricCode: 'calls', quantity: '100' }],
    alreadyCredited: [],
    newlyReversed: [{ metricCode: 'calls', aggregation: 'count', value: '1' }],
    period,
  });
  expect(lines.map((line) => [line.kind, line.amount])).toEqual([['usage', '-0.15']]);
});
