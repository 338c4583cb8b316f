/** Reversible outcomes: which reversals are accepted (domain/reversals.ts), each rule with its own code. */
import { judgeReversal, type ReversalTarget } from '../../domain/reversals';

const ORIGINAL: ReversalTarget = { customerId: 'c1', occurredAt: new Date('2031-03-10T12:00:00Z'), reversed: false, isReversal: false };
const request = (at: string, customerId = 'c1') => ({ customerId, occurredAt: new Date(at), reversesEventId: 'deal-1' });

describe('judgeReversal', () => {
  it('accepts a reversal inside the dispute window, up to the last instant before it closes', () => {
    expect(judgeReversal(request('2031-03-12T00:00:00Z'), [ORIGINAL], 'P7D')).toEqual({ ok: true });
    // P7D from Mar 10 12:00 closes at Mar 17 12:00: 11:59:59.999 is inside, 12:00 is not.
    expect(judgeReversal(request('2031-03-17T11:59:59.999Z'), [ORIGINAL], 'P7D')).toEqual({ ok: true });
    expect(judgeReversal(request('2031-03-17T12:00:00Z'), [ORIGINAL], 'P7D')).toMatchObject({ ok: false, code: 'dispute_window_closed' });
  });

  it('refuses unknown events, other customers\' events, reversals of reversals and second reversals', () => {
    expect(judgeReversal(request('2031-03-12T00:00:00Z'), [], 'P7D')).toMatchObject({ code: 'reversed_event_not_found' });
    expect(judgeReversal(request('2031-03-12T00:00:00Z', 'c2'), [ORIGINAL], 'P7D')).toMatchObject({ code: 'reversed_event_of_another_customer' });
    expect(judgeReversal(request('2031-03-12T00:00:00Z'), [{ ...ORIGINAL, isReversal: true }], 'P7D')).toMatchObject({ code: 'reversed_event_not_found' });
    expect(judgeReversal(request('2031-03-12T00:00:00Z'), [{ ...ORIGINAL, reversed: true }], 'P7D')).toMatchObject({ code: 'event_already_reversed' });
  });

  it('finds the customer\'s own event when another customer uses the same id', () => {
    expect(judgeReversal(request('2031-03-12T00:00:00Z'), [{ ...ORIGINAL, customerId: 'c2' }, ORIGINAL], 'P7D')).toEqual({ ok: true });
  });

  it('refuses every reversal on a plan without a dispute window', () => {
    expect(judgeReversal(request('2031-03-10T12:00:01Z'), [ORIGINAL], null)).toMatchObject({ code: 'dispute_window_closed' });
  });
});
