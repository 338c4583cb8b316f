/** Late events a re-rating billed into a closed period count in the usage a reversal is credited against. */
import { dimensionKey } from '../../domain/dimensions';
import { reversalCreditLines, withContributions, withoutContributions, type ReversedContribution } from '../../domain/reversal-credits';

const period = { start: '2031-03-01T00:00:00.000Z', end: '2031-04-01T00:00:00.000Z' };

test('a late outcome of a combination the close never saw adds that combination, and taking it out again leaves none of it', () => {
  const groupBy = ['region'];
  const closed = [{ metricCode: 'calls', quantity: '2', groups: [{ dimensions: { region: 'eu' }, quantity: '2' }] }];
  const late: ReversedContribution = { metricCode: 'calls', aggregation: 'count', value: null, dimensions: { region: 'us' }, groupBy };
  const billed = withContributions(closed, [late]);
  expect(billed).toEqual([{ metricCode: 'calls', quantity: '3', groups: [{ dimensions: { region: 'eu' }, quantity: '2' }, { dimensions: { region: 'us' }, quantity: '1' }] }]);
  const back = withoutContributions(billed, [late]);
  expect(back[0].quantity).toBe('2');
  expect(back[0].groups!.map((group) => [dimensionKey(group.dimensions, groupBy), group.quantity])).toEqual([
    [dimensionKey({ region: 'eu' }, groupBy), '2'],
    [dimensionKey({ region: 'us' }, groupBy), '0'],
  ]);
});

test('a percentage outcome billed late is credited at its own value', () => {
  const deals = { metricCode: 'deals', price: { model: 'percentage' as const, rate: '0.02' } };
  const deal = (value: string): ReversedContribution => ({ metricCode: 'deals', aggregation: 'count', value });
  const lines = reversalCreditLines({
    currency: 'USD',
    charges: [deals],
    closedUsage: [{ metricCode: 'deals', quantity: '1', eventValues: ['1000'] }],
    billedLate: [deal('500')],
    alreadyCredited: [],
    newlyReversed: [deal('500')],
    period,
  });
  expect(lines.map((line) => line.amount)).toEqual(['-10.00']);
});

test('with an included credit, a reversal of usage billed past it by late events gives back what it billed', () => {
  const calls = { metricCode: 'calls', price: { model: 'per_unit' as const, unitPrice: '1.00' } };
  const call: ReversedContribution = { metricCode: 'calls', aggregation: 'count', value: null };
  const credit = (billedLate: ReversedContribution[]) =>
    reversalCreditLines({ currency: 'USD', charges: [calls], creditBucket: '10.00', closedUsage: [{ metricCode: 'calls', quantity: '8' }], billedLate, alreadyCredited: [], newlyReversed: [call], period })
      .reduce((sum, line) => sum + Number(line.amount), 0)
      .toFixed(2);
  expect(credit([])).toBe('0.00');
  expect(credit([call, call, call, call, call])).toBe('-1.00');
});
