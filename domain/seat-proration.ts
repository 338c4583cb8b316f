/**
 * Recurring, seat-like quantities prorated within the period (docs/pricing.md "Seats prorated within the
 * period"): each unit bills for the share of the period it existed, so a seat added halfway through a 30-day
 * period counts 0.5. The result is an ordinary quantity that any quantity price model then prices.
 *
 * Rule: the level (units present) is a step function of time, starting at `openingUnits` at the period start
 * and changed by each event, either by a signed `delta` (+1 a seat added, -1 removed) or by a new `level`
 * (the latest value wins from its timestamp on). The prorated quantity is
 *   Σ level × (seconds at that level) / (seconds in the period),
 * counted in whole seconds like flat-fee proration (domain/proration.ts), then rounded half-up to 12 decimals
 * (the most a quantity carries); the invoice line is still rounded once, to the minor unit, by rating.
 * Changes at or before the period start set the opening level; changes at or after its end do not count.
 * Pure: no clock, no I/O.
 */
import { Dec, ZERO } from './money';
import { decimalText } from './price-calculators';
import { parseDecimal } from './price-models';

export interface UnitChange {
  /** ISO-8601 timestamp of the change. */
  readonly at: string;
  /** Units added (positive) or removed (negative). Exactly one of delta and level. */
  readonly delta?: string;
  /** The number of units from `at` on. */
  readonly level?: string;
}

export interface ProratedSegment {
  readonly from: string;
  readonly to: string;
  readonly units: string;
  readonly seconds: number;
}

export interface ProratedUnits {
  /** Σ units × seconds / periodSeconds, half-up to 12 decimals: the quantity to rate. */
  readonly quantity: string;
  /** The seconds the quantity is divided by: the period's, or the billing period's it is a stretch of. */
  readonly periodSeconds: number;
  /** The level over time within the period, one entry per constant stretch (stretches of 0 seconds left out). */
  readonly segments: readonly ProratedSegment[];
}

export class SeatProrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SeatProrationError';
  }
}

const QUANTITY_DECIMALS = 12;

export function proratedUnits(input: {
  period: { start: string; end: string };
  /**
   * The billing period `period` is a stretch of, when an immediate plan change (or a cancellation now) cut the period
   * into stretches each invoiced on its own: the level is counted over `period` but divided by this period's seconds, so each stretch
   * bills its share and the stretches add up to the whole period once (without it, 3 seats kept all month billed
   * 3 seats on each stretch's invoice). Ignored unless it holds `period`.
   */
  billingPeriod?: { start: string; end: string };
  openingUnits?: string;
  changes: readonly UnitChange[];
}): ProratedUnits {
  const start = timeOf(input.period.start, 'period.start');
  const end = timeOf(input.period.end, 'period.end');
  if (end <= start) throw new SeatProrationError('period.end must be after period.start');
  const billing = input.billingPeriod && { start: timeOf(input.billingPeriod.start, 'billingPeriod.start'), end: timeOf(input.billingPeriod.end, 'billingPeriod.end') };
  const whole = billing && billing.start <= start && billing.end >= end ? billing : { start, end };
  const periodSeconds = wholeSeconds(whole.start, whole.end);

  // Stable sort by time: changes at the same instant apply in the order given.
  const changes = input.changes
    .map((change, index) => ({ change, index, at: timeOf(change.at, `changes[${index}].at`) }))
    .sort((a, b) => a.at - b.at || a.index - b.index);

  let level = units(input.openingUnits ?? '0', 'openingUnits');
  let cursor = start;
  let unitSeconds = ZERO;
  const segments: ProratedSegment[] = [];
  // Each instant counts by the whole seconds left to the period end, as flat-fee proration counts a change
  // (domain/proration.ts), so a change at .600 s moves a whole second and the segments sum to periodSeconds;
  // flooring each segment on its own would drop up to a second of the level at every sub-second change.
  // Counted to the billing period's end, so the stretches of a split period also sum to its seconds.
  const close = (until: number): void => {
    const seconds = wholeSeconds(cursor, whole.end) - wholeSeconds(until, whole.end);
    if (seconds > 0) {
      segments.push({ from: new Date(cursor).toISOString(), to: new Date(until).toISOString(), units: decimalText(level), seconds });
      unitSeconds = unitSeconds.plus(level.times(seconds));
    }
    cursor = until;
  };
  for (const { change, index, at } of changes) {
    if (at >= end) break;
    if (at > start) close(at);
    level = applyChange(level, change, index);
  }
  close(end);

  const quantity = unitSeconds.div(periodSeconds).toDecimalPlaces(QUANTITY_DECIMALS, Dec.ROUND_HALF_UP);
  return { quantity: decimalText(quantity), periodSeconds, segments };
}

function applyChange(level: Dec, change: UnitChange, index: number): Dec {
  if ((change.delta === undefined) === (change.level === undefined)) {
    throw new SeatProrationError(`changes[${index}] needs exactly one of delta and level`);
  }
  const next = change.level !== undefined ? units(change.level, `changes[${index}].level`) : level.plus(signed(change.delta as string, `changes[${index}].delta`));
  if (next.lt(0)) throw new SeatProrationError(`changes[${index}] takes the level below 0 (${decimalText(next)})`);
  return next;
}

function timeOf(text: string, field: string): number {
  const time = Date.parse(text);
  if (typeof text !== 'string' || Number.isNaN(time)) throw new SeatProrationError(`${field} must be an ISO-8601 timestamp`);
  return time;
}

function units(text: string, field: string): Dec {
  const value = parseDecimal(text);
  if (value === undefined || value.lt(0)) throw new SeatProrationError(`${field} must be a non-negative decimal string`);
  return value;
}

function signed(text: string, field: string): Dec {
  const value = parseDecimal(text);
  if (value === undefined) throw new SeatProrationError(`${field} must be a decimal string`);
  return value;
}

/** Whole seconds between two instants, as domain/proration.ts counts them. */
function wholeSeconds(from: number, to: number): number {
  return Math.max(0, Math.floor((to - from) / 1000));
}
