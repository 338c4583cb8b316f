import { compareByMargin, subscriptionMargin, totalMargin } from '../../domain/margins';

describe('subscriptionMargin', () => {
  test('prices each metric once, rounds each cost line once, and margin = revenue - the costs shown', () => {
    // tokens 1,234,567 x 0.0000123 = 15.1851741 -> 15.19; calls 3 x 0.3333 = 0.9999 -> 1.00; cost 16.19
    const margin = subscriptionMargin({
      currency: 'USD',
      revenue: '20.000000000000',
      costs: [
        { metricCode: 'tokens', quantity: '1234567', unitCost: '0.0000123' },
        { metricCode: 'calls', quantity: '3', unitCost: '0.333300000000' },
        { metricCode: 'free', quantity: '99', unitCost: null },
      ],
    });
    expect(margin).toEqual({
      currency: 'USD',
      revenue: '20.00',
      cost: '16.19',
      margin: '3.81',
      marginPercent: '19.05', // 3.81 / 20 = 0.1905
      costLines: [
        { metricCode: 'calls', quantity: '3', unitCost: '0.3333', cost: '1.00' },
        { metricCode: 'free', quantity: '99', unitCost: null, cost: '0.00' },
        { metricCode: 'tokens', quantity: '1234567', unitCost: '0.0000123', cost: '15.19' },
      ],
    });
  });

  test('no revenue: the margin is the loss, and there is no percentage', () => {
    expect(subscriptionMargin({ currency: 'JPY', revenue: '0', costs: [{ metricCode: 'gpu', quantity: '2.5', unitCost: '101' }] })).toMatchObject({
      revenue: '0',
      cost: '253', // 252.5 rounds half-up to a whole yen
      margin: '-253',
      marginPercent: null,
    });
  });

  test('negative revenue (credit notes above what was billed) has no percentage either', () => {
    expect(subscriptionMargin({ currency: 'USD', revenue: '-9.90', costs: [] })).toMatchObject({ margin: '-9.90', marginPercent: null });
  });

  test('quantities keep their own scale (aggregates of properties may have more than 12 decimals)', () => {
    expect(subscriptionMargin({ currency: 'USD', revenue: '1', costs: [{ metricCode: 'gb', quantity: '0.1234567890123456', unitCost: '10' }] }).cost).toBe('1.23');
  });
});

test('loss-makers first: ascending margin, then the lower percentage, no revenue before some', () => {
  const rows = [
    { id: 'b', margin: '10.00', marginPercent: '50.00' },
    { id: 'a', margin: '-151.00', marginPercent: '-308.16' },
    { id: 'c', margin: '-10.00', marginPercent: null },
    { id: 'd', margin: '-10.00', marginPercent: '-5.00' },
    { id: 'e', margin: '10.00', marginPercent: '20.00' },
  ];
  expect([...rows].sort(compareByMargin).map((row) => row.id)).toEqual(['a', 'c', 'd', 'e', 'b']);
});

test('totals are sums of what each subscription shows', () => {
  expect(totalMargin('USD', [{ revenue: '49.00', cost: '200.00' }, { revenue: '0.00', cost: '10.00' }])).toEqual({
    currency: 'USD',
    revenue: '49.00',
    cost: '210.00',
    margin: '-161.00',
    marginPercent: '-328.57',
  });
});
