/**
 * Billing periods on the calendar, in UTC. Pure: no clock, no I/O, safe inside workflows.
 *
 * Every boundary is computed from the subscription's anchor, never from the previous boundary, so
 * month-end clamping does not drift: monthly from Jan 31 gives Feb 28 (29), Mar 31, Apr 30, May 31.
 */

/** An ISO-8601 duration such as P1M, P1Y, P1W, P14D or PT1M. Calendar parts and clock parts are kept apart. */
export interface BillingInterval {
  readonly months: number; // years are stored as 12 months
  readonly days: number; // weeks are stored as 7 days
  readonly milliseconds: number; // hours, minutes, seconds
}

const ISO_DURATION = /^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;

export class InvalidIntervalError extends Error {
  constructor(readonly input: string) {
    super(`not a positive ISO-8601 duration (e.g. P1M, P1Y, P14D, PT1M): ${JSON.stringify(input)}`);
    this.name = 'InvalidIntervalError';
  }
}

export function parseInterval(iso: string): BillingInterval {
  const match = ISO_DURATION.exec(iso);
  if (!match || iso === 'P' || iso.endsWith('T')) throw new InvalidIntervalError(iso);
  const [years, months, weeks, days, hours, minutes, seconds] = match.slice(1).map((part) => Number(part ?? 0));
  const interval: BillingInterval = {
    months: years * 12 + months,
    days: weeks * 7 + days,
    milliseconds: ((hours * 60 + minutes) * 60 + seconds) * 1000,
  };
  if (interval.months === 0 && interval.days === 0 && interval.milliseconds === 0) throw new InvalidIntervalError(iso);
  return interval;
}

export function isValidInterval(iso: string): boolean {
  try {
    parseInterval(iso);
    return true;
  } catch {
    return false;
  }
}

/**
 * The UTC instant of a calendar date and clock time. `Date.UTC` reads years 0-99 as 1900-1999 (year 50 becomes
 * 1950, and Feb 29 of year 0 a Mar 1 of 1900); `setUTCFullYear` takes every year as given.
 */
function utcInstant(year: number, monthIndex: number, day: number, hours = 0, minutes = 0, seconds = 0, milliseconds = 0): number {
  const instant = new Date(0);
  instant.setUTCFullYear(year, monthIndex, day);
  instant.setUTCHours(hours, minutes, seconds, milliseconds);
  return instant.getTime();
}

function daysInMonth(year: number, monthIndex: number): number {
  return new Date(utcInstant(year, monthIndex + 1, 0)).getUTCDate();
}

/** `anchor + count × interval`, months first (clamped to the month's last day), then days, then clock time. */
export function addIntervals(anchor: Date, interval: BillingInterval, count: number): Date {
  const totalMonths = anchor.getUTCMonth() + interval.months * count;
  const year = anchor.getUTCFullYear() + Math.floor(totalMonths / 12);
  const month = ((totalMonths % 12) + 12) % 12;
  const day = Math.min(anchor.getUTCDate(), daysInMonth(year, month));
  const monthsApplied = utcInstant(
    year,
    month,
    day,
    anchor.getUTCHours(),
    anchor.getUTCMinutes(),
    anchor.getUTCSeconds(),
    anchor.getUTCMilliseconds(),
  );
  return new Date(monthsApplied + (interval.days * 86_400_000 + interval.milliseconds) * count);
}

export interface BillingPeriod {
  /** 0 for the first paid period after the anchor. */
  readonly index: number;
  readonly start: Date;
  /** Exclusive. */
  readonly end: Date;
}

export function billingPeriod(anchor: Date, interval: BillingInterval, index: number): BillingPeriod {
  return { index, start: addIntervals(anchor, interval, index), end: addIntervals(anchor, interval, index + 1) };
}

/** The period that contains `at` (start inclusive, end exclusive). */
export function billingPeriodAt(anchor: Date, interval: BillingInterval, at: Date): BillingPeriod {
  if (at < anchor) throw new RangeError('instant is before the billing anchor');
  // Estimate with an average period length, then step to the exact calendar period.
  const approxLength = interval.months * 30.436875 * 86_400_000 + interval.days * 86_400_000 + interval.milliseconds;
  let index = Math.max(0, Math.floor((at.getTime() - anchor.getTime()) / approxLength) - 1);
  while (addIntervals(anchor, interval, index) > at) index -= 1;
  while (addIntervals(anchor, interval, index + 1) <= at) index += 1;
  return billingPeriod(anchor, interval, index);
}
