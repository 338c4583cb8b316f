/**
 * hasAllowances decides whether the period invoice reads the stretch's share of the period at all
 * (activities/invoicing.ts): a plan term the share cuts that it misses is given whole on the invoice while the usage
 * preview and threshold invoices (which always read the share) cut it, so the two disagree after a plan change.
 */
import { hasAllowances } from '../../domain/allowances';

const perUnit = { model: 'per_unit', unitPrice: '0.10' };

test.each([
  ['a credit bucket', { creditBucket: '10.00' }, []],
  ['a minimum commitment', { minimumCommitment: '50.00' }, []],
  ['a charge minimum', {}, [{ metricCode: 'calls', price: perUnit, minAmount: '5.00' }]],
  ['a charge maximum', {}, [{ metricCode: 'calls', price: perUnit, maxAmount: '500.00' }]],
  ['included units', {}, [{ metricCode: 'calls', price: perUnit, includedUnits: '100' }]],
  [
    "one combination's included units",
    {},
    [{ metricCode: 'tokens', price: perUnit, dimensions: { groupBy: ['model'], prices: [{ match: { model: 'large' }, price: perUnit, includedUnits: '1000' }], unmatched: 'list' } }],
  ],
])('a plan with %s has a term a stretch cuts', (_name, settings, charges) => {
  expect(hasAllowances({ settings, charges })).toBe(true);
});

test('a plan with none of them reads no share', () => {
  const charges = [{ metricCode: 'tokens', price: perUnit, dimensions: { groupBy: ['model'], prices: [{ match: { model: 'large' }, price: perUnit }], unmatched: 'list' } }];
  expect(hasAllowances({ settings: { usageGracePeriod: 'PT1H' }, charges })).toBe(false);
  expect(hasAllowances({ settings: null, charges: null })).toBe(false);
});
