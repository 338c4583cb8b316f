/** Margins with cost tables (docs/margins.md): costs per table share, loss-making customers and combinations. */
import { combinationMargins, combinationTotals } from '../../domain/combination-margins';
import { customerMargins, exactCostOf, subscriptionMargin } from '../../domain/margins';
import { Dec } from '../../domain/money';

describe('cost from cost tables', () => {
  it('costs each share at its table, the rest and unmatched shares at the metric unit cost, rounded once per metric', () => {
    // 1,000 tokens: 600 under table A at 0.0011, 300 under table B at 0.0013, 50 unmatched, 50 closed before any
    // table: 0.66 + 0.39 + (50 + 50) × 0.001 fallback = 1.15.
    const segments = [
      { effectiveFrom: '2033-03-01T00:00:00.000Z', quantity: '600', unitCost: '0.0011' },
      { effectiveFrom: '2033-03-15T00:00:00.000Z', quantity: '300', unitCost: '0.0013' },
      { effectiveFrom: '2033-03-15T00:00:00.000Z', quantity: '50', unitCost: null },
    ];
    expect(exactCostOf(new Dec(1000), '0.001', segments).toFixed()).toBe('1.15');
    expect(exactCostOf(new Dec(1000), null, segments).toFixed()).toBe('1.05');
    // 0.005 half-up: one line rounded once.
    const margin = subscriptionMargin({ currency: 'USD', revenue: '2.00', costs: [{ metricCode: 't', quantity: '5', unitCost: null, segments: [{ effectiveFrom: '2033-03-01T00:00:00.000Z', quantity: '5', unitCost: '0.001' }] }] });
    expect([margin.cost, margin.margin, margin.costLines[0].segments?.length]).toEqual(['0.01', '1.99', 1]);
  });

  it('gives each combination its own table shares', () => {
    const lines = combinationMargins('USD', [{ metricCode: 't', dimensionKey: 'model=a', revenue: '1.00' }], [
      { metricCode: 't', dimensionKey: 'model=a', quantity: '100', unitCost: '0.001', segments: [{ effectiveFrom: '2033-03-01T00:00:00.000Z', quantity: '100', unitCost: '0.02' }] },
    ]);
    expect(lines).toEqual([{ metricCode: 't', dimensionKey: 'model=a', quantity: '100', revenue: '1.00', cost: '2.00', margin: '-1.00', lossMaking: true }]);
  });
});

describe('loss-makers', () => {
  it('adds a customer\'s subscriptions per currency and flags those that lose money, worst first', () => {
    const row = (subscriptionId: string, customer: string, currency: string, revenue: string, cost: string) => ({ subscriptionId, customerId: customer, customerExternalId: customer, currency, revenue, cost });
    const customers = customerMargins([row('s1', 'a', 'USD', '10.00', '12.00'), row('s2', 'a', 'USD', '5.00', '1.00'), row('s3', 'b', 'USD', '1.00', '4.00'), row('s4', 'a', 'EUR', '1.00', '2.00')]);
    expect(customers.map((c) => [c.customerExternalId, c.currency, c.margin, c.lossMaking, c.subscriptionIds])).toEqual([
      ['b', 'USD', '-3.00', true, ['s3']],
      ['a', 'EUR', '-1.00', true, ['s4']],
      ['a', 'USD', '2.00', false, ['s1', 's2']],
    ]);
  });

  it('sums each combination over subscriptions: a model sold below cost shows even where each plan still earns', () => {
    const line = (dimensionKey: string, revenue: string, cost: string) => ({ metricCode: 't', dimensionKey, quantity: '10', revenue, cost, margin: new Dec(revenue).minus(cost).toFixed(2), lossMaking: new Dec(revenue).lt(cost) });
    const totals = combinationTotals([
      { currency: 'USD', combinations: [line('model=small', '1.00', '2.00'), line('model=large', '9.00', '3.00')] },
      { currency: 'USD', combinations: [line('model=small', '2.00', '2.50')] },
    ]);
    expect(totals.map((t) => [t.dimensionKey, t.quantity, t.revenue, t.cost, t.margin, t.lossMaking, t.subscriptions])).toEqual([
      ['model=small', '20', '3.00', '4.50', '-1.50', true, 2],
      ['model=large', '10', '9.00', '3.00', '6.00', false, 1],
    ]);
  });
});
