/**
 * Usage costed with one currency's cost tables is never rated in another (docs/pricing.md "Cost tables"): a closure
 * that recorded USD unit costs cannot put them on a EUR invoice as euros, by a plain or a dimensional cost_plus
 * charge. Costs recorded before tables had a currency (no costCurrency) rate as before.
 */
import { rateDimensionalUsage, type DimensionalCharge } from '../../domain/dimensions';
import { rateUsage, RatingError } from '../../domain/rating';

const MAR1 = '2033-03-01T00:00:00.000Z';
// 1,000 images at 0.45 (USD, as the closure recorded it) + 10 % = 495.00 in USD; in EUR it would be a wrong 495.00.
const usage = (costCurrency?: string) => ({
  metricCode: 'images',
  quantity: '1000',
  costs: [{ effectiveFrom: MAR1, quantity: '1000', unitCost: '0.45' }],
  groups: [{ dimensions: { size: 'large' }, quantity: '1000', costs: [{ effectiveFrom: MAR1, quantity: '1000', unitCost: '0.45' }] }],
  ...(costCurrency ? { costCurrency } : {}),
});
const plain = { metricCode: 'images', price: { model: 'cost_plus' as const, markup: '0.1' } };
const dimensional: DimensionalCharge = { ...plain, dimensions: { groupBy: ['size'], unmatched: 'list', prices: [], defaultPrice: { model: 'cost_plus', markup: '0.1' } } };

test('USD-costed usage rates on a USD invoice, and is refused on a EUR one (plain and dimensional charges)', () => {
  expect(rateUsage({ currency: 'USD', charges: [plain], usage: [usage('USD')] }).lines[0].amount).toBe('495.00');
  expect(rateDimensionalUsage({ currency: 'USD', charges: [dimensional], usage: [usage('USD')] }).lines[0].amount).toBe('495.00');
  for (const rate of [() => rateUsage({ currency: 'EUR', charges: [plain], usage: [usage('USD')] }), () => rateDimensionalUsage({ currency: 'EUR', charges: [dimensional], usage: [usage('USD')] })]) {
    expect(rate).toThrow(RatingError);
    expect(rate).toThrow('usage for images was costed with USD cost tables; it cannot be rated in EUR');
  }
});

test('costs recorded before cost tables had a currency rate as they did', () => {
  expect(rateUsage({ currency: 'EUR', charges: [plain], usage: [usage()] }).lines[0].amount).toBe('495.00');
});
