/**
 * Worked examples of prepaid credit (issue 12, docs/wallets.md), every amount a decimal string to the minor unit.
 */
import { burnDownOrder, drawCredits, GrantState, projectedRunOut } from '../../domain/wallet';
import { creditsAppliedLines, walletPayableCharges } from '../../domain/wallet-invoice';
import { invoiceTotal, DraftInvoiceLine } from '../../domain/invoice';
import { decideEntitlement, eventsOverLimit } from '../../domain/entitlements';
import { Dec } from '../../domain/money';

const day = (n: number) => new Date(Date.UTC(2027, 0, n));
const period = { from: day(1), to: day(31) };

function grant(id: string, remaining: string, priority: number, expiresAt: Date | null, createdAt = day(1), extra: Partial<GrantState> = {}): GrantState {
  return { id, remaining, priority, effectiveAt: day(1), expiresAt, createdAt, metricCodes: null, ...extra };
}

describe('burn-down order across three grants', () => {
  //   promo      priority 1, expires Jan 20, 10.00
  //   purchased  priority 1, no expiry,      50.00   (same priority: the expiring one goes first)
  //   goodwill   priority 0, expires Feb 1,   5.00   (lowest priority number: first of all)
  const grants = [grant('purchased', '50.00', 1, null), grant('promo', '10.00', 1, day(20)), grant('goodwill', '5.00', 0, day(32))];

  test('priority, then earliest expiry, then oldest', () => {
    expect(burnDownOrder(grants).map((g) => g.id)).toEqual(['goodwill', 'promo', 'purchased']);
    const older = grant('older', '1.00', 1, null, new Date(Date.UTC(2026, 11, 1)));
    expect(burnDownOrder([...grants, older]).map((g) => g.id)).toEqual(['goodwill', 'promo', 'older', 'purchased']);
  });

  test('usage of 22.37 takes 5.00, 10.00, then 7.37', () => {
    const drawing = drawCredits({ currency: 'USD', grants, charges: [{ metricCode: 'tokens', amount: '22.37' }], during: period, overdraftAvailable: '0' });
    expect(drawing.draws).toEqual([
      { grantId: 'goodwill', amount: '5.00' },
      { grantId: 'promo', amount: '10.00' },
      { grantId: 'purchased', amount: '7.37' },
    ]);
    expect(drawing).toMatchObject({ covered: '22.37', uncovered: '0.00' });
  });

  test('usage beyond every grant leaves the rest to pay', () => {
    const drawing = drawCredits({ currency: 'USD', grants, charges: [{ metricCode: 'tokens', amount: '70.01' }], during: period, overdraftAvailable: '0' });
    expect(drawing).toMatchObject({ covered: '65.00', uncovered: '5.01' });
  });
});

test('a grant expiring mid-period pays for that period; one that expired before it began does not', () => {
  const midPeriod = grant('mid', '3.00', 0, day(15));
  const expiredBefore = grant('gone', '3.00', 0, day(1));
  const drawing = drawCredits({ currency: 'USD', grants: [midPeriod, expiredBefore], charges: [{ metricCode: null, amount: '4.50' }], during: period, overdraftAvailable: '0' });
  expect(drawing.draws).toEqual([{ grantId: 'mid', amount: '3.00' }]);
  expect(drawing.uncovered).toBe('1.50');
});

test('a grant scoped to a metric pays only that metric; a grant effective after the period pays nothing', () => {
  const scoped = grant('gpu-only', '100.00', 0, null, day(1), { metricCodes: ['gpu_seconds'] });
  const later = grant('later', '100.00', 0, null, day(1), { effectiveAt: day(31) });
  const drawing = drawCredits({
    currency: 'USD',
    grants: [scoped, later],
    charges: [
      { metricCode: 'tokens', amount: '2.00' },
      { metricCode: 'gpu_seconds', amount: '7.25' },
    ],
    during: period,
    overdraftAvailable: '0',
  });
  expect(drawing).toMatchObject({ draws: [{ grantId: 'gpu-only', amount: '7.25' }], covered: '7.25', uncovered: '2.00' });
});

test('an overdraft plan: past the grants, usage draws up to the overdraft limit', () => {
  const drawing = drawCredits({ currency: 'USD', grants: [grant('g', '1.00', 0, null)], charges: [{ metricCode: null, amount: '30.00' }], during: period, overdraftAvailable: '25.00' });
  expect(drawing).toEqual({ draws: [{ grantId: 'g', amount: '1.00' }, { grantId: null, amount: '25.00' }], covered: '26.00', uncovered: '4.00' });
});

test('JPY and KWD draw in their own minor units', () => {
  const yen = drawCredits({ currency: 'JPY', grants: [grant('y', '100.6', 0, null)], charges: [{ metricCode: null, amount: '250' }], during: period, overdraftAvailable: '0' });
  expect(yen).toMatchObject({ draws: [{ grantId: 'y', amount: '100' }], uncovered: '150' });
  const dinar = drawCredits({ currency: 'KWD', grants: [grant('k', '1.2345', 0, null)], charges: [{ metricCode: null, amount: '2.000' }], during: period, overdraftAvailable: '0' });
  expect(dinar).toMatchObject({ draws: [{ grantId: 'k', amount: '1.234' }], uncovered: '0.766' });
});

describe('the invoice: usage lines, then credits applied per grant, then what is left', () => {
  const line = (kind: DraftInvoiceLine['kind'], amount: string, metricCode: string | null = null): DraftInvoiceLine => ({
    kind,
    description: kind,
    metricCode,
    quantity: '1',
    amount,
    periodStart: '2027-01-01T00:00:00.000Z',
    periodEnd: '2027-01-31T00:00:00.000Z',
    breakdown: {},
  });
  // Next period's fee 20.00 in advance; last period's usage 12.40 + 3.10 with a 5.00 credit bucket.
  const lines = [line('flat_fee', '20.00'), line('usage', '12.40', 'tokens'), line('usage', '3.10', 'gpu'), line('credit', '-5.00')];

  test('the wallet pays usage net of the credit bucket, never the flat fee', () => {
    expect(walletPayableCharges(lines, 'USD')).toEqual([
      { metricCode: 'tokens', amount: '7.40' },
      { metricCode: 'gpu', amount: '3.10' },
    ]);
  });

  test('usage a threshold invoice already billed is not paid again by the wallet (only what is left of it)', () => {
    // 7.40 + 3.10 = 10.50 of usage after the bucket; a threshold invoice billed 8.00 of it, paid in cash: the
    // wallet pays the 2.50 left (from the last usage line, as the bucket covers usage in line order), not 10.50.
    const withThreshold = [...lines, line('threshold_credit', '-8.00')];
    expect(walletPayableCharges(withThreshold, 'USD')).toEqual([{ metricCode: 'gpu', amount: '2.50' }]);
  });

  test('two grants drawn: two credits-applied lines, the total is what is left', () => {
    const drawing = drawCredits({
      currency: 'USD',
      grants: [grant('promo', '4.00', 0, day(40)), grant('bought', '100.00', 1, null)],
      charges: walletPayableCharges(lines, 'USD'),
      during: period,
      overdraftAvailable: '0',
    });
    const credits = creditsAppliedLines(
      drawing.draws.map((draw) => ({ grantId: draw.grantId, source: draw.grantId === 'promo' ? 'promotional' : 'purchased', amount: draw.amount, expiresAt: draw.grantId === 'promo' ? day(40) : null })),
      'USD',
      { start: '2027-01-01T00:00:00.000Z', end: '2027-01-31T00:00:00.000Z' },
    );
    expect(credits.map((credit) => [credit.description, credit.amount])).toEqual([
      ['Credits applied (promotional credit, expires 2027-02-09)', '-4.00'],
      ['Credits applied (purchased credit)', '-6.50'],
    ]);
    expect(invoiceTotal([...lines, ...credits], 'USD')).toBe('20.00');
  });

  test('an invoice of usage only, fully covered, totals 0.00 (nothing to charge)', () => {
    const usageOnly = [line('usage', '8.00', 'tokens'), line('credit', '-5.00')];
    const drawing = drawCredits({ currency: 'USD', grants: [grant('g', '50.00', 0, null)], charges: walletPayableCharges(usageOnly, 'USD'), during: period, overdraftAvailable: '0' });
    const credits = creditsAppliedLines(drawing.draws.map((draw) => ({ ...draw, source: 'purchased', expiresAt: null })), 'USD', { start: 'a', end: 'b' });
    expect(invoiceTotal([...usageOnly, ...credits], 'USD')).toBe('0.00');
  });
});

test('projected run-out: 30.00 left after spending 10.00 in 2 days runs out in 6 more days', () => {
  const now = day(3);
  expect(projectedRunOut('30.00', '10.00', 2 * 86_400_000, now)).toEqual(day(9));
  expect(projectedRunOut('30.00', '0.00', 2 * 86_400_000, now)).toBeNull();
});

test('entitlement answers and the limit check agree: access ends exactly where the next unit is refused', () => {
  for (let used = 0; used <= 4; used += 1) {
    const answer = decideEntitlement({ code: 'api_calls', kind: 'metered', metricCode: 'calls', limit: '3' }, { usage: String(used), periodEnd: day(31), balance: null });
    const refused = eventsOverLimit(new Map([['m', String(used)]]), new Map([['m', '3']]), [new Map([['m', new Dec(1)]])]);
    expect(answer.has_access).toBe(!refused.has(0));
  }
});

test('a grant expiring mid-period pays at most what the usage before its expiry made payable, shared with grants expiring earlier', () => {
  // Usage 10.00 in the period; by Jan 10 it had made 2.00 payable, by Jan 20 6.00.
  //   early  priority 0, expires Jan 10, 5.00: at most 2.00
  //   late   priority 0, expires Jan 20, 5.00: at most 6.00 − 2.00 (early's) = 4.00
  //   open   priority 1, no expiry:            the remaining 4.00
  const grants = [grant('early', '5.00', 0, day(10)), grant('late', '5.00', 0, day(20)), grant('open', '50.00', 1, null)];
  const drawing = drawCredits({
    currency: 'USD',
    grants,
    charges: [{ metricCode: 'tokens', amount: '10.00' }],
    during: period,
    overdraftAvailable: '0',
    accruedBefore: [
      { at: day(10), payable: '2.00' },
      { at: day(20), payable: '6.00' },
    ],
  });
  expect(drawing.draws).toEqual([
    { grantId: 'early', amount: '2.00' },
    { grantId: 'late', amount: '4.00' },
    { grantId: 'open', amount: '4.00' },
  ]);
  expect(drawing).toMatchObject({ covered: '10.00', uncovered: '0.00' });
});
