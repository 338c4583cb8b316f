/**
 * How a seat-like metric's stored events become the unit changes of domain/seat-proration.ts, and the level a
 * period hands on to the next one (docs/pricing.md "Seats prorated within the period"). Pure.
 *
 * Two aggregations, one per kind of change the proration rule takes:
 * - `prorated_sum`: each event's property is a signed delta (+1 a seat added, -1 removed);
 * - `prorated_latest`: each event's property is the new level (the number of seats from then on).
 * The level at a period start (the opening level) is every earlier event's effect, so a seat added in March
 * bills in full in April.
 */
import { Dec } from './money';
import { decimalText } from './price-calculators';
import { SeatProrationError, type UnitChange } from './seat-proration';

export type ProratedAggregation = 'prorated_sum' | 'prorated_latest';

export const PRORATED_AGGREGATIONS: ReadonlySet<string> = new Set<ProratedAggregation>(['prorated_sum', 'prorated_latest']);

export function isProratedAggregation(aggregation: string): aggregation is ProratedAggregation {
  return PRORATED_AGGREGATIONS.has(aggregation);
}

/** A stored event's numeric value as the change it makes. */
export function unitChangeOf(aggregation: ProratedAggregation, at: string, value: string): UnitChange {
  return aggregation === 'prorated_sum' ? { at, delta: value } : { at, level: value };
}

/** The level a period leaves behind, for the next period's opening level (kept with the period's close). */
export interface CarriedLevel {
  /** Units present at the end of the period. */
  readonly level: string;
  /** When the last change that shaped `level` happened (null: none yet); a late `level` change before it is stale. */
  readonly setAt: string | null;
  /**
   * The same, from claimed changes only (those a close counted for its own period), when the close kept it: the next
   * period opens at it plus every change still unclaimed before its start. Unclaimed or claimed is decided when the
   * change is stored or claimed, never by comparing instants, so a change stored while a close runs is counted once:
   * by the close that claimed it, else by every later opening (store/seat-usage.ts). Absent on closes kept before it.
   */
  readonly claimed?: { readonly level: string; readonly setAt: string | null };
}

/**
 * The level after applying `changes` (in time order, stable) to `from`. For a `prorated_latest` metric a change
 * older than `from.setAt` is stale: a newer level already replaced it. A delta always applies (it adds). A level
 * below 0 is refused, as the proration rule refuses it. A `partial` level (a part of the changes, such as the claimed
 * ones, or a part applied out of time order after another) is not a level of seats: a removal claimed while the
 * addition it removes is still unclaimed takes it below 0, so it is not refused (the caller checks the whole level).
 */
export function levelAfter(
  aggregation: ProratedAggregation,
  from: Pick<CarriedLevel, 'level' | 'setAt'>,
  changes: readonly UnitChange[],
  options: { readonly partial?: boolean } = {},
): CarriedLevel {
  const ordered = changes
    .map((change, index) => ({ change, index, at: Date.parse(change.at) }))
    .sort((a, b) => a.at - b.at || a.index - b.index);
  let level = new Dec(from.level);
  let setAt = from.setAt === null ? null : Date.parse(from.setAt);
  for (const { change, at } of ordered) {
    if (change.delta !== undefined) {
      level = level.plus(change.delta);
    } else {
      if (setAt !== null && at < setAt) continue;
      level = new Dec(change.level as string);
    }
    if (level.lt(0) && !options.partial) throw new SeatProrationError(`the change at ${change.at} takes the level below 0 (${decimalText(level)})`);
    setAt = setAt === null ? at : Math.max(setAt, at);
  }
  return { level: decimalText(level), setAt: setAt === null ? null : new Date(setAt).toISOString() };
}
