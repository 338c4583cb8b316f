/**
 * Seat-like metrics (domain/seat-metrics.ts): how stored values become unit changes, and the level one period
 * carries into the next, worked by hand. The store feeds these into domain/seat-proration.ts.
 */
import { deterministicFailureType } from '../../activities/failures';
import { rateUsage, type UsageLine } from '../../domain/rating';
import { isProratedAggregation, levelAfter, unitChangeOf } from '../../domain/seat-metrics';
import { proratedUnits, SeatProrationError } from '../../domain/seat-proration';

const april = { start: '2031-04-01T00:00:00Z', end: '2031-05-01T00:00:00Z' }; // 30 days
const may = { start: '2031-05-01T00:00:00Z', end: '2031-06-01T00:00:00Z' }; // 31 days
const none = { level: '0', setAt: null };

function seatAmount(quantity: string): string {
  const rated = rateUsage({ currency: 'USD', charges: [{ metricCode: 'seats', price: { model: 'per_unit', unitPrice: '10.00' } }], usage: [{ metricCode: 'seats', quantity }] });
  return (rated.lines.find((line) => line.kind === 'usage') as UsageLine).amount;
}

describe('seat metrics', () => {
  it('names the two prorated aggregations and maps each value to its kind of change', () => {
    expect(['prorated_sum', 'prorated_latest', 'sum', 'latest'].map(isProratedAggregation)).toEqual([true, true, false, false]);
    expect(unitChangeOf('prorated_sum', '2031-04-16T00:00:00Z', '-1')).toEqual({ at: '2031-04-16T00:00:00Z', delta: '-1' });
    expect(unitChangeOf('prorated_latest', '2031-04-16T00:00:00Z', '4')).toEqual({ at: '2031-04-16T00:00:00Z', level: '4' });
  });

  it('a plan at 10.00 a seat: a seat added on day 16 of 30 bills half, a seat removed on day 25 bills 24/30, the level carries in full', () => {
    // April: 2 seats from Apr 1, +1 on Apr 16, -1 on Apr 25: (2×15 + 3×9 + 2×6) / 30 = 69/30 = 2.3 -> 23.00
    //   per seat: the full one 10.00, the one removed after 24 days 8.00, the one added for 15 days 5.00.
    const changes = [unitChangeOf('prorated_sum', '2031-04-01T00:00:00Z', '2'), unitChangeOf('prorated_sum', '2031-04-16T00:00:00Z', '1'), unitChangeOf('prorated_sum', '2031-04-25T00:00:00Z', '-1')];
    const aprilUnits = proratedUnits({ period: april, openingUnits: '0', changes });
    expect([aprilUnits.quantity, seatAmount(aprilUnits.quantity)]).toEqual(['2.3', '23.00']);
    const carried = levelAfter('prorated_sum', none, changes);
    expect(carried).toEqual({ level: '2', setAt: '2031-04-25T00:00:00.000Z' });
    // May, no changes: the 2 seats from April bill in full, 20.00 (not 0, not prorated).
    const mayUnits = proratedUnits({ period: may, openingUnits: carried.level, changes: [] });
    expect([mayUnits.quantity, seatAmount(mayUnits.quantity)]).toEqual(['2', '20.00']);
    // Just the seat added on day 16: 15/30 = half a seat, 5.00.
    const added = proratedUnits({ period: april, changes: [unitChangeOf('prorated_sum', '2031-04-16T00:00:00Z', '1')] });
    expect([added.quantity, seatAmount(added.quantity)]).toEqual(['0.5', '5.00']);
  });

  it('a late delta always adds to the carried level; a late level older than the carried one is stale', () => {
    const carried = { level: '2', setAt: '2031-04-25T00:00:00.000Z' };
    expect(levelAfter('prorated_sum', carried, [{ at: '2031-04-10T00:00:00Z', delta: '1' }])).toEqual({ level: '3', setAt: '2031-04-25T00:00:00.000Z' });
    expect(levelAfter('prorated_latest', carried, [{ at: '2031-04-10T00:00:00Z', level: '7' }])).toEqual(carried);
    expect(levelAfter('prorated_latest', carried, [{ at: '2031-04-28T00:00:00Z', level: '7' }])).toEqual({ level: '7', setAt: '2031-04-28T00:00:00.000Z' });
    // Changes apply in time order whatever order they are read in.
    expect(levelAfter('prorated_latest', none, [{ at: '2031-04-20T00:00:00Z', level: '1' }, { at: '2031-04-05T00:00:00Z', level: '9' }]).level).toBe('1');
  });

  it('a removal below zero seats is refused, as the proration rule refuses it', () => {
    expect(() => levelAfter('prorated_sum', { level: '1', setAt: null }, [{ at: '2031-04-10T00:00:00Z', delta: '-2' }])).toThrow(SeatProrationError);
    // At a period close the same events fail every retry: the step stops (needs attention) instead of retrying.
    expect(deterministicFailureType(new SeatProrationError('changes[0] takes the level below 0 (-1)'))).toBe('seat_level_negative');
  });
});
