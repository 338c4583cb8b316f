/**
 * A percentage charge without per-event bounds rates the same from the values' sum (what the running totals keep,
 * store/usage-preview.ts) as from every event's value: same lines, amounts and breakdown.
 */
import fc from 'fast-check';
import { Decimal } from 'decimal.js';
import { rateUsage, RatingError } from '../../domain/rating';

const value = fc.integer({ min: 0, max: 99_999_999 }).map((cents) => (cents / 100).toFixed(2));
const rate = fc.constantFrom('0.02', '0.005', '0.125', '1', '0.0333');
const fixedFee = fc.option(fc.constantFrom('0.30', '0', '0.05'), { nil: undefined });

test('rating from valueTotal equals rating from eventValues when no minFee/maxFee clamps an event', () => {
  fc.assert(
    fc.property(fc.array(value, { maxLength: 40 }), rate, fixedFee, (values, chargeRate, fixedFeePerEvent) => {
      const charges = [{ metricCode: 'deals', price: { model: 'percentage' as const, rate: chargeRate, ...(fixedFeePerEvent ? { fixedFeePerEvent } : {}) } }];
      const quantity = String(values.length);
      const total = values.reduce((sum, text) => sum.plus(text), new Decimal(0)).toFixed(2);
      const fromValues = rateUsage({ currency: 'USD', charges, usage: [{ metricCode: 'deals', quantity, eventValues: values }] });
      const fromTotal = rateUsage({ currency: 'USD', charges, usage: [{ metricCode: 'deals', quantity, valueTotal: total }] });
      expect(fromTotal).toEqual(fromValues);
    }),
  );
});

test.each([{ minFee: '1.00' }, { maxFee: '5.00' }, { freeEvents: '3' }, { freeValue: '10' }])('a charge with %j still needs every event value', (bounds) => {
  const charges = [{ metricCode: 'deals', price: { model: 'percentage' as const, rate: '0.02', ...bounds } }];
  expect(() => rateUsage({ currency: 'USD', charges, usage: [{ metricCode: 'deals', quantity: '2', valueTotal: '30' }] })).toThrow(RatingError);
});
