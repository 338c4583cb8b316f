/**
 * An immediate plan change splits a billing period into usage stretches, each given its part of its plan's
 * per-period allowances (domain/allowances.ts). Each stretch rounded amount × fraction on its own, so the parts of
 * one plan's amount did not add up to it:
 *
 *   0.05 USD bucket, same plan on both sides of a mid-period change:   0.03 + 0.03        = 0.06
 *   10.00 USD bucket, change at 499.5 s of a 1000 s period:             5.00 + 5.01        = 10.01
 *   0.05 USD bucket, A -> B -> A at the thirds, same bucket throughout:  0.02 + 0.02 + 0.02 = 0.06
 *   1000 JPY bucket at the thirds:                                       333 + 333 + 333    = 999
 *   10.00 bucket, a change, a 10-day pause, a change back:               3.33 + 3.33 + 3.33 = 9.99
 *
 * Now each part is cut per END: round(X × leftAtStart) − round(X × leftAtEnd), and consecutive stretches share the
 * end between them, so the parts telescope to X exactly (bucket, commitment, included units, min/max amounts).
 */
import { allowanceShare, partOfPeriod, stretchAllowances, stretchCreditBucket, stretchUsageTerms, WHOLE_PERIOD, type PeriodShare, type SplitPeriod } from '../../domain/allowances';
import { Dec } from '../../domain/money';
import { rateUsage, type Charge, type RatedLine } from '../../domain/rating';

const at = (iso: string) => new Date(iso);
const SEPTEMBER: SplitPeriod = { start: at('2030-09-01T00:00:00Z'), end: at('2030-10-01T00:00:00Z') };

/** The shares of the stretches a period's changes cut it into (all in one period: no pause). */
function sharesAt(period: SplitPeriod, changes: Date[]): PeriodShare[] {
  const starts = [period.start, ...changes];
  return starts.map((start, k) =>
    allowanceShare({ start }, { ...(k > 0 ? { startedBy: period } : {}), ...(k < changes.length ? { endedBy: { at: changes[k], period } } : {}) }),
  );
}

const sum = (amounts: (string | undefined)[]) => amounts.reduce((total, amount) => total.plus(amount ?? '0'), new Dec(0)).toString();
const bucketPlan = (creditBucket: string, currency = 'USD') => ({ currency, flat_fee: '0', charges: [], settings: { creditBucket } });

test('a 0.05 bucket split at mid-period on the same plan gives 0.02 + 0.03, not 0.03 + 0.03', () => {
  const shares = sharesAt(SEPTEMBER, [at('2030-09-16T00:00:00Z')]);
  const parts = shares.map((share) => stretchCreditBucket({ creditBucket: '0.05' }, 'USD', share));
  expect(parts).toEqual(['0.02', '0.03']);
  expect(sum(parts)).toBe('0.05');
  // The same parts from every reading of the stretch.
  expect(shares.map((share) => stretchAllowances(bucketPlan('0.05'), share).creditBucket)).toEqual(parts);
  expect(shares.map((share) => stretchUsageTerms(bucketPlan('0.05'), share).creditBucket)).toEqual(parts);
});

test('a 10.00 bucket split where both halves rounded up adds up to 10.00, not 10.01', () => {
  const period: SplitPeriod = { start: at('2030-09-01T00:00:00.000Z'), end: at('2030-09-01T00:16:40.000Z') }; // 1000 s
  const shares = sharesAt(period, [at('2030-09-01T00:08:19.500Z')]); // 499.5 s: 0.4995 and 0.5005 of it
  expect(shares.map((share) => share.fraction)).toEqual(['0.4995', '0.5005']);
  const parts = shares.map((share) => stretchCreditBucket({ creditBucket: '10.00' }, 'USD', share));
  expect(sum(parts)).toBe('10');
  expect(parts).toEqual(['4.99', '5.01']);
});

test('a single split keeps the figures it had: 10.00 with 20 of 30 days left gives 3.33 and 6.67', () => {
  const shares = sharesAt(SEPTEMBER, [at('2030-09-11T00:00:00Z')]);
  expect(shares.map((share) => stretchCreditBucket({ creditBucket: '10.00' }, 'USD', share))).toEqual(['3.33', '6.67']);
});

test('A -> B -> A with the same bucket: the three parts add up to the bucket, in USD and in JPY', () => {
  const shares = sharesAt(SEPTEMBER, [at('2030-09-11T00:00:00Z'), at('2030-09-21T00:00:00Z')]);
  const usd = shares.map((share) => stretchAllowances(bucketPlan('0.05'), share).creditBucket);
  expect(usd).toEqual(['0.02', '0.01', '0.02']);
  expect(sum(usd)).toBe('0.05');
  const jpy = shares.map((share) => stretchAllowances(bucketPlan('1000', 'JPY'), share).creditBucket);
  expect(jpy).toEqual(['333', '334', '333']);
  expect(sum(jpy)).toBe('1000');
});

test('A -> B -> A: the commitment and the fees counted toward it add up to the whole too', () => {
  const plan = { currency: 'USD', flat_fee: '0.05', charges: [], settings: { minimumCommitment: '0.05', commitmentIncludesFees: true } };
  const parts = sharesAt(SEPTEMBER, [at('2030-09-11T00:00:00Z'), at('2030-09-21T00:00:00Z')]).map((share) => stretchAllowances(plan, share));
  expect(sum(parts.map((part) => part.minimumCommitment))).toBe('0.05');
  expect(sum(parts.map((part) => part.feesTowardCommitment))).toBe('0.05');
});

test('a change, a 10-day pause and a change back: the ends in two periods still telescope to the whole bucket', () => {
  // September, change on the 11th (20/30 left); a 10-day pause moves the period to Sep 11 .. Oct 11; change back on
  // Oct 1, which is Sep 21 of the moved period (10/30 left).
  const moved: SplitPeriod = { start: at('2030-09-11T00:00:00Z'), end: at('2030-10-11T00:00:00Z') };
  const first = at('2030-09-11T00:00:00Z');
  const back = at('2030-10-01T00:00:00Z');
  const shares = [
    allowanceShare({ start: SEPTEMBER.start }, { endedBy: { at: first, period: SEPTEMBER } }),
    allowanceShare({ start: first }, { startedBy: SEPTEMBER, endedBy: { at: back, period: moved } }),
    allowanceShare({ start: back }, { startedBy: moved }),
  ];
  expect(shares.map((share) => new Dec(share.fraction).times(30).toDecimalPlaces(6).toString())).toEqual(['10', '10', '10']);
  const parts = shares.map((share) => stretchCreditBucket({ creditBucket: '10.00' }, 'USD', share));
  expect(parts).toEqual(['3.33', '3.34', '3.33']);
  expect(sum(parts)).toBe('10');
});

test("a whole period keeps the plan's own amounts", () => {
  expect(allowanceShare({ start: SEPTEMBER.start }, {})).toEqual(WHOLE_PERIOD);
  const plan = { currency: 'USD', flat_fee: '9.999', charges: [], settings: { creditBucket: '0.05', minimumCommitment: '0.05', commitmentIncludesFees: true } };
  expect(stretchAllowances(plan, WHOLE_PERIOD)).toEqual(stretchAllowances(plan));
  expect(stretchAllowances(plan)).toEqual({ creditBucket: '0.05', minimumCommitment: '0.05', feesTowardCommitment: '10' });
  expect(partOfPeriod(new Dec('0.3333333333333333'), WHOLE_PERIOD, 12).toString()).toBe('0.3333333333333333');
});

describe("a charge's included units and min/max amounts, cut by rating", () => {
  const shares = sharesAt(SEPTEMBER, [at('2030-09-11T00:00:00Z'), at('2030-09-21T00:00:00Z')]);
  const usageLine = (charge: Charge, share: PeriodShare, quantity = '0') => {
    const [line] = rateUsage({ currency: 'USD', charges: [charge], usage: [{ metricCode: 'calls', quantity }], periodShare: share }).lines as (RatedLine & { kind: 'usage' })[];
    return line;
  };

  test('included units (12 decimals) add up to the whole: 1, not 0.999999999999', () => {
    const charge: Charge = { metricCode: 'calls', price: { model: 'per_unit', unitPrice: '1.00' }, includedUnits: '1' };
    const included = shares.map((share) => (usageLine(charge, share).breakdown as { includedUnits: string }).includedUnits);
    expect(included).toEqual(['0.333333333333', '0.333333333334', '0.333333333333']);
    expect(sum(included)).toBe('1');
  });

  test('a 0.05 charge minimum adds up to 0.05, not 0.06', () => {
    const charge: Charge = { metricCode: 'calls', price: { model: 'per_unit', unitPrice: '1.00' }, minAmount: '0.05' };
    expect(sum(shares.map((share) => usageLine(charge, share).amount))).toBe('0.05');
  });

  test('a 0.05 charge maximum adds up to 0.05, not 0.06', () => {
    const charge: Charge = { metricCode: 'calls', price: { model: 'per_unit', unitPrice: '1.00' }, maxAmount: '0.05' };
    expect(sum(shares.map((share) => usageLine(charge, share, '1000').amount))).toBe('0.05');
  });

  test('per-end parts of a minimum just under the maximum that cross are not refused: the maximum wins', () => {
    // min 0.05 and max 0.06 from half to a quarter of the period left: min 0.03 - 0.01 = 0.02, max 0.03 - 0.02 = 0.01.
    const share: PeriodShare = { fraction: '0.25', leftAtStart: '0.5', leftAtEnd: '0.25' };
    const charge: Charge = { metricCode: 'calls', price: { model: 'per_unit', unitPrice: '1.00' }, minAmount: '0.05', maxAmount: '0.06' };
    expect(usageLine(charge, share).amount).toBe('0.01');
  });
});
