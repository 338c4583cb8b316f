/**
 * The threshold index of `every` thresholds is accrued / every, unbounded; invoices.threshold_index is an int4. The
 * highest threshold reached stops at what the column holds (test/integration/threshold-index-past-int4.test.ts
 * shows the subscription that needed attention before).
 */
import { decideThresholdInvoice, highestThresholdReached, MAX_THRESHOLD_INDEX } from '../../domain/progressive-billing';

test('the highest threshold reached never passes the int4 column', () => {
  expect(highestThresholdReached({ every: '0.01' }, '21474836.46')).toBe(2_147_483_646);
  expect(highestThresholdReached({ every: '0.01' }, '30000000.00')).toBe(MAX_THRESHOLD_INDEX);
  expect(highestThresholdReached({ every: '1' }, '999999999999999999.99')).toBe(MAX_THRESHOLD_INDEX);
  expect(MAX_THRESHOLD_INDEX).toBe(2 ** 31 - 1);
});

test('past the cap the invoice bills all that accrued, and then nothing more is due until the stretch closes', () => {
  const first = decideThresholdInvoice({ thresholds: { every: '0.01' }, currency: 'USD', accrued: '30000000.00', earlier: [] });
  expect(first).toEqual({ thresholdIndex: MAX_THRESHOLD_INDEX, threshold: '21474836.47', amount: '30000000.00' });
  const earlier = [{ invoiceId: 'i1', number: 'INV-1', thresholdIndex: MAX_THRESHOLD_INDEX, total: '30000000.00' }];
  expect(decideThresholdInvoice({ thresholds: { every: '0.01' }, currency: 'USD', accrued: '40000000.00', earlier })).toBeNull();
});
