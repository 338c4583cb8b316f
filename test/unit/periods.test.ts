import { addIntervals, billingPeriod, billingPeriodAt, parseInterval } from '../../domain/periods';

const utc = (iso: string): Date => new Date(iso);
const boundaries = (anchor: string, interval: string, count: number): string[] =>
  Array.from({ length: count }, (_, n) => addIntervals(utc(anchor), parseInterval(interval), n).toISOString().slice(0, 10));

describe('billing periods follow the calendar', () => {
  it('monthly from Jan 31 clamps to each month end without drifting', () => {
    expect(boundaries('2027-01-31T00:00:00Z', 'P1M', 5)).toEqual(['2027-01-31', '2027-02-28', '2027-03-31', '2027-04-30', '2027-05-31']);
  });

  it('monthly from Jan 31 reaches Feb 29 in a leap year', () => {
    expect(boundaries('2028-01-31T00:00:00Z', 'P1M', 2)).toEqual(['2028-01-31', '2028-02-29']);
  });

  it('yearly from Feb 29 goes to Feb 28, and back to Feb 29 in the next leap year', () => {
    expect(boundaries('2024-02-29T00:00:00Z', 'P1Y', 5)).toEqual(['2024-02-29', '2025-02-28', '2026-02-28', '2027-02-28', '2028-02-29']);
  });

  it('weekly and daily periods are fixed lengths', () => {
    expect(boundaries('2027-03-01T00:00:00Z', 'P1W', 3)).toEqual(['2027-03-01', '2027-03-08', '2027-03-15']);
    expect(boundaries('2027-03-01T00:00:00Z', 'P14D', 2)).toEqual(['2027-03-01', '2027-03-15']);
  });

  it('short demo intervals keep the clock time', () => {
    const anchor = utc('2027-03-01T10:00:30Z');
    expect(addIntervals(anchor, parseInterval('PT1M'), 3).toISOString()).toBe('2027-03-01T10:03:30.000Z');
    expect(addIntervals(anchor, parseInterval('PT1H30M'), 1).toISOString()).toBe('2027-03-01T11:30:30.000Z');
  });

  it('a period is [start, end) and the next starts where it ends', () => {
    const anchor = utc('2027-01-31T00:00:00Z');
    const interval = parseInterval('P1M');
    const first = billingPeriod(anchor, interval, 0);
    const second = billingPeriod(anchor, interval, 1);
    expect(first.end).toEqual(second.start);
    expect(billingPeriodAt(anchor, interval, utc('2027-02-28T00:00:00Z')).index).toBe(1);
    expect(billingPeriodAt(anchor, interval, utc('2027-02-27T23:59:59.999Z')).index).toBe(0);
    expect(billingPeriodAt(anchor, interval, utc('2031-07-15T00:00:00Z')).start.toISOString()).toBe('2031-06-30T00:00:00.000Z');
  });

  it('years 0-99 stay where they are (Date.UTC would read them as 1900-1999)', () => {
    expect(boundaries('0050-01-31T00:00:00Z', 'P1M', 3)).toEqual(['0050-01-31', '0050-02-28', '0050-03-31']);
    // Year 0 is a leap year (1900 is not); year 99 + 1 year is year 100.
    expect(boundaries('0000-01-31T00:00:00Z', 'P1M', 2)).toEqual(['0000-01-31', '0000-02-29']);
    expect(boundaries('0099-02-15T00:00:00Z', 'P1Y', 2)).toEqual(['0099-02-15', '0100-02-15']);
    expect(billingPeriodAt(utc('0050-01-31T00:00:00Z'), parseInterval('P1M'), utc('0050-03-01T00:00:00Z')).start.toISOString()).toBe('0050-02-28T00:00:00.000Z');
  });

  it('rejects durations that are not positive ISO-8601', () => {
    for (const bad of ['', 'P', 'PT', '1M', 'P0D', 'P-1M', 'P1.5M', 'month', 'P1MT']) {
      expect(() => parseInterval(bad)).toThrow(/ISO-8601/);
    }
  });
});
