/** Reversible outcomes: which reversals are accepted (domain/reversals.ts), each rule with its own code. */
import fc from 'fast-check';
import type { DimensionalCharge } from '../../domain/dimensions';
import { Dec } from '../../domain/money';
import { rateUsage } from '../../domain/rating';
import { reversalCreditLines, splitCreditLines, usageLeftToPay, type ReversedContribution } from '../../domain/reversal-credits';
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

  it('judges by the window of the plan that bills the original; the customer’s only when no plan prices it', () => {
    expect(judgeReversal(request('2031-03-12T00:00:00Z'), [{ ...ORIGINAL, disputeWindow: 'P7D' }], null)).toEqual({ ok: true });
    expect(judgeReversal(request('2031-03-12T00:00:00Z'), [{ ...ORIGINAL, disputeWindow: null }], 'P7D')).toMatchObject({ code: 'dispute_window_closed' });
    expect(judgeReversal(request('2031-03-12T00:00:00Z'), [{ ...ORIGINAL, disputeWindow: 'P1D' }], 'P7D')).toMatchObject({ code: 'dispute_window_closed' });
  });
});

describe('credit for outcomes reversed after their period was invoiced', () => {
  const period = { start: '2031-03-01T00:00:00.000Z', end: '2031-04-01T00:00:00.000Z' };
  const deals = { metricCode: 'deals', price: { model: 'percentage' as const, rate: '0.02', minFee: '5.00' } };
  const closed = [{ metricCode: 'deals', quantity: '3', eventValues: ['1000', '100', '2000'] }];
  const deal = (value: string): ReversedContribution => ({ metricCode: 'deals', aggregation: 'count', value });

  it('credits what the reversed outcome billed, its value and its minimum fee', () => {
    // Billed: 20.00 + max(2.00, 5.00) + 40.00 = 65.00. Reversing the 100.00 deal takes back its 5.00 minimum.
    const lines = reversalCreditLines({ currency: 'USD', charges: [deals], closedUsage: closed, alreadyCredited: [], newlyReversed: [deal('100')], period });
    expect(lines.map((line) => [line.description, line.amount, line.periodStart])).toEqual([['deals (reversed outcomes)', '-5.00', period.start]]);
  });

  it('credits each reversal once: a later one is measured after the earlier credit', () => {
    // After the 100.00 deal was credited, reversing the 2,000.00 one takes back 40.00, not 45.00.
    const lines = reversalCreditLines({ currency: 'USD', charges: [deals], closedUsage: closed, alreadyCredited: [deal('100')], newlyReversed: [deal('2000')], period });
    expect(lines.map((line) => line.amount)).toEqual(['-40.00']);
  });

  it('gives nothing back for usage the included credit had paid for', () => {
    const tokens = { metricCode: 'tokens', price: { model: 'per_unit' as const, unitPrice: '0.01' } };
    // 1,000 tokens = 10.00, all inside a 15.00 credit bucket: the invoice billed 0, a reversal of 300 credits 0.
    const lines = reversalCreditLines({
      currency: 'USD',
      charges: [tokens],
      creditBucket: '15.00',
      closedUsage: [{ metricCode: 'tokens', quantity: '1000' }],
      alreadyCredited: [],
      newlyReversed: [{ metricCode: 'tokens', aggregation: 'sum', value: '300' }],
      period,
    });
    expect(lines.reduce((sum, line) => sum + Number(line.amount), 0)).toBe(0);
  });

  it('takes a reversed outcome out of its combination on a dimensional charge', () => {
    const charge: DimensionalCharge = {
      metricCode: 'tokens',
      price: { model: 'per_unit', unitPrice: '0' },
      dimensions: { groupBy: ['model'], unmatched: 'list', prices: [{ match: { model: 'large' }, price: { model: 'per_unit', unitPrice: '0.01' } }], defaultPrice: { model: 'per_unit', unitPrice: '0.001' } },
    };
    const lines = reversalCreditLines({
      currency: 'USD',
      charges: [charge],
      closedUsage: [{ metricCode: 'tokens', quantity: '1500', groups: [{ dimensions: { model: 'large' }, quantity: '1000' }, { dimensions: { model: 'small' }, quantity: '500' }] }],
      alreadyCredited: [],
      newlyReversed: [{ metricCode: 'tokens', aggregation: 'sum', value: '200', dimensions: { model: 'large' }, groupBy: ['model'] }],
      period,
    });
    // large: 1,000 → 800 at 0.01 = 10.00 → 8.00; small untouched.
    expect(lines.map((line) => [line.description, line.amount])).toEqual([['tokens (model=large) (reversed outcomes)', '-2.00']]);
  });
});

describe('reversals that cannot be credited, and credits of percentage caps and cost-plus prices', () => {
  const period = { start: '2031-03-01T00:00:00.000Z', end: '2031-04-01T00:00:00.000Z' };

  it('refuses a reversal of an outcome invoiced under a max, latest or unique_count metric, with its own code', () => {
    const invoiced = { ...ORIGINAL, invoicedUnder: { metricCode: 'peak_seats' } };
    expect(judgeReversal(request('2031-03-12T00:00:00Z'), [invoiced], 'P7D')).toMatchObject({ ok: false, code: 'reversal_not_creditable', detail: expect.stringContaining('peak_seats') });
    // The other rules come first: an already reversed or a too-late one keeps its own code.
    expect(judgeReversal(request('2031-03-18T00:00:00Z'), [invoiced], 'P7D')).toMatchObject({ code: 'dispute_window_closed' });
  });

  it('credits a capped percentage outcome its maximum fee, not its rate × value', () => {
    // 2 % of 1,000.00 = 20.00, of 5,000.00 = 100.00 capped at 50.00, + 0.30 each: billed 20.30 + 50.30 = 70.60.
    // Reversing the 5,000.00 deal takes back what it contributed: 50.00 + 0.30 = 50.30.
    const charges = [{ metricCode: 'deals', price: { model: 'percentage' as const, rate: '0.02', maxFee: '50.00', fixedFeePerEvent: '0.30' } }];
    const lines = reversalCreditLines({
      currency: 'USD', charges, period, alreadyCredited: [],
      closedUsage: [{ metricCode: 'deals', quantity: '2', eventValues: ['1000.00', '5000.00'] }],
      newlyReversed: [{ metricCode: 'deals', aggregation: 'count', value: '5000.00' }],
    });
    expect(lines.map((line) => line.amount)).toEqual(['-50.30']);
  });

  it('credits a cost-plus outcome at the cost of the table that costed it (a cost change mid-period)', () => {
    // Images at cost + 50 %: 4 before the Mar 15 change at 0.10, 2 after at 0.20: (0.40 + 0.40) × 1.5 = 1.20 billed.
    // Reversing an image of Mar 20 takes back 0.20 × 1.5 = 0.30; one of Mar 2 would take back 0.15.
    const charges = [{ metricCode: 'images', price: { model: 'cost_plus' as const, markup: '0.5' } }];
    const closedUsage = [{ metricCode: 'images', quantity: '6', costs: [{ effectiveFrom: '2031-03-01T00:00:00.000Z', quantity: '4', unitCost: '0.10' }, { effectiveFrom: '2031-03-15T00:00:00.000Z', quantity: '2', unitCost: '0.20' }] }];
    const image = (occurredAt: string): ReversedContribution => ({ metricCode: 'images', aggregation: 'count', value: null, occurredAt });
    const credit = (reversed: ReversedContribution[]) => reversalCreditLines({ currency: 'USD', charges, period, closedUsage, alreadyCredited: [], newlyReversed: reversed }).map((line) => line.amount);
    expect(credit([image('2031-03-20T10:00:00.000Z')])).toEqual(['-0.30']);
    expect(credit([image('2031-03-02T10:00:00.000Z')])).toEqual(['-0.15']);
    expect(credit([image('2031-03-02T10:00:00.000Z'), image('2031-03-20T10:00:00.000Z')])).toEqual(['-0.45']);
  });
});

describe('property: a reversed outcome contributes nothing once its reversal is billed', () => {
  it('billed − credit equals the period rated without the reversed outcomes', () => {
    const period = { start: '2031-03-01T00:00:00.000Z', end: '2031-04-01T00:00:00.000Z' };
    const charges = [{ metricCode: 'deals', price: { model: 'percentage' as const, rate: '0.025', minFee: '1.00', maxFee: '40.00', fixedFeePerEvent: '0.30' } }];
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 300_000 }), { minLength: 1, maxLength: 12 }), fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }), (cents, reversedFlags) => {
        const values = cents.map((value) => (value / 100).toFixed(2));
        const reversed = values.filter((_, index) => reversedFlags[index]);
        const kept = values.filter((_, index) => !reversedFlags[index]);
        const rate = (eventValues: string[]) => rateUsage({ currency: 'USD', charges, usage: [{ metricCode: 'deals', quantity: String(eventValues.length), eventValues }] }).subtotal;
        const credit = reversalCreditLines({
          currency: 'USD',
          charges,
          closedUsage: [{ metricCode: 'deals', quantity: String(values.length), eventValues: values }],
          alreadyCredited: [],
          newlyReversed: reversed.map((value) => ({ metricCode: 'deals', aggregation: 'count' as const, value })),
          period,
        }).reduce((sum, line) => sum.plus(line.amount), new Dec(0));
        expect(new Dec(rate(values)).plus(credit).toFixed(2)).toBe(new Dec(rate(kept)).toFixed(2));
      }),
      { numRuns: 200, seed: 20261205 },
    );
  });
});

describe('property: a reversed cost-plus outcome contributes nothing once its reversal is billed', () => {
  it('billed − credit equals the period rated without the reversed events, whichever cost table costed them', () => {
    const period = { start: '2031-03-01T00:00:00.000Z', end: '2031-04-01T00:00:00.000Z' };
    const charges = [{ metricCode: 'calls', price: { model: 'cost_plus' as const, markup: '0.17' } }];
    const tableA = { from: '2031-03-01T00:00:00.000Z', unitCost: '0.013' };
    const tableB = { from: '2031-03-15T00:00:00.000Z', unitCost: '0.021' };
    fc.assert(
      fc.property(fc.array(fc.record({ late: fc.boolean(), units: fc.integer({ min: 1, max: 5_000 }), reversed: fc.boolean() }), { minLength: 1, maxLength: 12 }), (events) => {
        const costsOf = (subset: typeof events) =>
          [tableA, tableB].map((table) => ({
            effectiveFrom: table.from,
            unitCost: table.unitCost,
            quantity: String(subset.filter((event) => event.late === (table === tableB)).reduce((total, event) => total + event.units, 0)),
          }));
        const usageOf = (subset: typeof events) => [{ metricCode: 'calls', quantity: String(subset.reduce((total, event) => total + event.units, 0)), costs: costsOf(subset) }];
        const rate = (subset: typeof events) => rateUsage({ currency: 'USD', charges, usage: usageOf(subset) }).subtotal;
        const credit = reversalCreditLines({
          currency: 'USD', charges, period, closedUsage: usageOf(events), alreadyCredited: [],
          newlyReversed: events.filter((event) => event.reversed).map((event) => ({ metricCode: 'calls', aggregation: 'sum' as const, value: String(event.units), occurredAt: event.late ? '2031-03-20T00:00:00.000Z' : '2031-03-02T00:00:00.000Z' })),
        }).reduce((sum, line) => sum.plus(line.amount), new Dec(0));
        expect(new Dec(rate(events)).plus(credit).toFixed(2)).toBe(new Dec(rate(events.filter((event) => !event.reversed))).toFixed(2));
      }),
      { numRuns: 200, seed: 20261205 },
    );
  });
});

describe('a reversal credit split at what the unpaid invoice owes for the usage', () => {
  const period = { periodStart: '2031-01-01T00:00:00.000Z', periodEnd: '2031-02-01T00:00:00.000Z' };
  const line = (kind: 'usage' | 'credit' | 'flat_fee', amount: string, breakdown: Record<string, unknown> = {}) => ({ kind, description: kind, metricCode: kind === 'usage' ? 'calls' : null, quantity: '1', amount, ...period, breakdown });

  it('cuts the line crossing the split, its list amount in proportion, the parts adding up to the whole', () => {
    // 10.00 of calls billed at 30 % off (7.00), bucket correction +1.00 (net credit 6.00); the invoice owes 3.00 of it.
    const credit = [line('usage', '-7.00', { reversal: true, listAmount: '-10.00' }), line('credit', '1.00', { reversal: true })];
    const { settled, rest } = splitCreditLines(credit, '3.00', 'USD');
    expect(settled.map((part) => [part.amount, part.breakdown.listAmount])).toEqual([['-3.00', '-4.29']]);
    expect(rest.map((part) => [part.kind, part.amount, part.breakdown.listAmount])).toEqual([
      ['usage', '-4.00', '-5.71'],
      ['credit', '1.00', undefined],
    ]);
  });

  it('counts the usage of the period less the wallet’s draws as owed for it, never the fee', () => {
    // 20.00 fee, 8.00 of calls, 5.00 drawn from prepaid credit: 3.00 owed for the calls.
    const invoice = [line('flat_fee', '20.00'), line('usage', '8.00'), line('credit', '-5.00', { walletGrantId: 'g1', source: 'promotional' })];
    expect(usageLeftToPay(invoice, period.periodStart, 'USD').toFixed(2)).toBe('3.00');
    expect(usageLeftToPay([line('flat_fee', '20.00'), line('usage', '7.40'), line('credit', '-7.40', { walletGrantId: 'g1', source: 'promotional' })], period.periodStart, 'USD').toFixed(2)).toBe('0.00');
  });
});
