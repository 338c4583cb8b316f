/**
 * Seat proration counts whole seconds the way flat-fee proration does (domain/proration.ts): a change at an instant
 * with milliseconds counts from the whole seconds left to the period end, and the seconds at each level add up to
 * the period's seconds, so no seat-second goes unbilled. Stored events carry milliseconds.
 */
import { rateUsage, type UsageLine } from '../../domain/rating';
import { remainingShare } from '../../domain/proration';
import { proratedUnits } from '../../domain/seat-proration';

const april = { start: '2031-04-01T00:00:00Z', end: '2031-05-01T00:00:00Z' }; // 30 days = 2,592,000 s

function seatAmount(quantity: string, unitPrice: string): string {
  const rated = rateUsage({ currency: 'USD', charges: [{ metricCode: 'seats', price: { model: 'per_unit', unitPrice } }], usage: [{ metricCode: 'seats', quantity }] });
  return (rated.lines[0] as UsageLine).amount;
}

describe('seat proration with changes at sub-second instants', () => {
  it('a level restated mid-period at .500 s leaves 1,000 seats at 100.00 a seat billing 100,000.00', () => {
    // The level never changes, so every second of April bills 1,000 seats.
    const units = proratedUnits({ period: april, openingUnits: '1000', changes: [{ at: '2031-04-16T12:00:00.500Z', level: '1000' }] });
    expect([units.quantity, seatAmount(units.quantity, '100.00')]).toEqual(['1000', '100000.00']);
    expect(units.segments.reduce((total, segment) => total + segment.seconds, 0)).toBe(2_592_000);
  });

  it('a seat added at Apr 16 00:00:00.600 bills the flat-fee share of the time left: 200 seats + 1,295,999/2,592,000 at 100.00 = 20,050.00', () => {
    // Flat-fee proration from the same instant: floor(1,295,999.4) = 1,295,999 whole seconds left.
    const at = '2031-04-16T00:00:00.600Z';
    expect(remainingShare(april, new Date(at)).remainingSeconds).toBe(1_295_999);
    // 200 × 100.00 = 20,000.00 for the month, + 100.00 × 1,295,999 / 2,592,000 = 49.99996... for the added seat.
    const units = proratedUnits({ period: april, openingUnits: '200', changes: [{ at, delta: '1' }] });
    expect(seatAmount(units.quantity, '100.00')).toBe('20050.00');
    expect(units.segments.map((segment) => [segment.units, segment.seconds])).toEqual([['200', 1_296_001], ['201', 1_295_999]]);
  });
});
