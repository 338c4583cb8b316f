/**
 * A period split by an immediate plan change: each stretch prorates its seats over the billing period, so the
 * stretches add up to the period once (before, each counted as a whole period: 3 seats billed 3 on each invoice).
 */
import { Dec } from '../../domain/money';
import { proratedUnits } from '../../domain/seat-proration';

const period = { start: '2034-09-01T00:00:00.000Z', end: '2034-10-01T00:00:00.000Z' };

test('the stretches of a split period add up to the whole period, even at a sub-second change', () => {
  for (const changeAt of ['2034-09-11T00:00:00.000Z', '2034-09-11T00:00:07.431Z']) {
    const before = proratedUnits({ period: { start: period.start, end: changeAt }, billingPeriod: period, openingUnits: '3', changes: [] });
    const after = proratedUnits({ period: { start: changeAt, end: period.end }, billingPeriod: period, openingUnits: '3', changes: [] });
    expect(new Dec(before.quantity).plus(after.quantity).toString()).toBe('3');
    expect(before.periodSeconds).toBe(30 * 86400);
  }
  expect(proratedUnits({ period: { start: period.start, end: '2034-09-11T00:00:00Z' }, billingPeriod: period, openingUnits: '3', changes: [] }).quantity).toBe('1');
});

test('a billing period that does not hold the stretch is ignored', () => {
  const stretch = { start: '2034-09-01T00:00:00Z', end: '2034-09-11T00:00:00Z' };
  expect(proratedUnits({ period: stretch, billingPeriod: { start: '2034-09-05T00:00:00Z', end: '2034-10-01T00:00:00Z' }, openingUnits: '3', changes: [] }).quantity).toBe('3');
});
