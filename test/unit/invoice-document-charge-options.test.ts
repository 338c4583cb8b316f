/**
 * The invoice document explains the charge options (docs/pricing.md "Charge options") from the breakdown the
 * rating engine stored: a bounded charge shows what its price model rated and what the bound did, a block tier
 * its blocks, a free allowance its free events (and fixed fees only for the paid ones), a true-up the fees it counted.
 */
import { breakdownRows } from '../../api/documents/invoice-document';
import { rateUsage, type Charge, type RatedLine } from '../../domain/rating';

function rowsOf(charge: Charge, quantity: string, eventValues?: string[], extra: { minimumCommitment?: string; feesTowardCommitment?: string } = {}) {
  const { lines } = rateUsage({ currency: 'USD', charges: [charge], usage: [{ metricCode: charge.metricCode, quantity, ...(eventValues ? { eventValues } : {}) }], ...extra });
  return lines.map((line: RatedLine) => breakdownRows({ kind: line.kind, breakdown: line.breakdown as unknown as Record<string, unknown> }));
}

test('a charge raised to its minimum shows the rated amount and the adjustment', () => {
  const [rows] = rowsOf({ metricCode: 'calls', price: { model: 'per_unit', unitPrice: '0.10' }, minAmount: '5.00' }, '30');
  expect(rows).toEqual([
    { label: 'Per unit', value: '30 × 0.1 = 3' },
    { label: 'Charge bounds', value: 'minimum 5: rated 3, adjustment 2' },
  ]);
});

test('a tier billed in blocks shows its started blocks', () => {
  const [rows] = rowsOf({ metricCode: 'mb', price: { model: 'graduated', tiers: [{ upTo: '1000', unitPrice: '1', blockSize: '100' }, { upTo: null, unitPrice: '1', blockSize: '1000' }] } }, '5325');
  expect(rows).toEqual([
    { label: 'Tier 1: 0 to 1000', value: '10 blocks of 100 (1000 units) × 1 = 10' },
    { label: 'Tier 2: above 1000', value: '5 blocks of 1000 (4325 units) × 1 = 5' },
  ]);
});

test('a free allowance shows the free events, and fixed fees count only the paid ones', () => {
  const [rows] = rowsOf({ metricCode: 'pay', price: { model: 'percentage', rate: '0.02', fixedFeePerEvent: '0.30', freeEvents: '2' } }, '3', ['100', '50', '200']);
  expect(rows).toContainEqual({ label: 'Free allowance', value: '2 events free, 150 of value free' });
  expect(rows).toContainEqual({ label: 'Fixed fees', value: '1 × 0.3 = 0.3' });
});

test('a true-up counting the flat fee says so', () => {
  const rows = rowsOf({ metricCode: 'calls', price: { model: 'per_unit', unitPrice: '1' } }, '30', undefined, { minimumCommitment: '100.00', feesTowardCommitment: '49.99' });
  expect(rows[1]).toEqual([{ label: 'Minimum commitment', value: '100.00, usage 30.00, fees 49.99, shortfall 20.01' }]);
});
