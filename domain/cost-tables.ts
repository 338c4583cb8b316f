/**
 * Cost tables (docs/pricing.md "Cost tables"): what one unit of a metric costs us, per combination of its group_by
 * properties and per date. Pure.
 *
 * - A table is in one currency, and a metric's tables of each currency are their own timeline: a subscription's usage
 *   is costed only with the tables of its plan's currency (a USD provider price is not a EUR cost).
 * - A table takes effect at its `effectiveFrom` and holds until the next one of its currency: an event is costed by
 *   the table in effect at its own timestamp, so a provider price change on the 14th costs the 1st-13th at the old
 *   price.
 * - Within a table, entries match combinations exactly as a dimensional charge's prices do (domain/dimensions.ts):
 *   a dimension left out is a wildcard, the most specific match wins, an empty match `{}` matches everything, and
 *   a table where two matches could tie is refused. The same index resolves both, so the rule cannot drift.
 */
import { DimensionPriceIndex, findAmbiguities, type DimensionPrice, type DimensionValues } from './dimensions';
import { Dec, ZERO, isDecimalString, isSupportedCurrency, toDecimal } from './money';

export interface CostEntry {
  readonly match: DimensionValues;
  /** What one unit costs us, a non-negative decimal string in the table's currency (not rounded to its minor unit). */
  readonly unitCost: string;
}

export interface CostTable {
  /** ISO 4217 code of every unit cost in the table. */
  readonly currency: string;
  /** ISO-8601 instant from which the table applies (until the next table of the metric in its currency). */
  readonly effectiveFrom: string;
  readonly entries: readonly CostEntry[];
}

/**
 * A share of usage costed at one unit cost: the events of one combination that fell under one table. `unitCost`
 * is null when no table was in effect at those events' time or none of its entries matched them (not costed).
 */
export interface CostSegment {
  /** The effectiveFrom of the table that costed these events; null when none was in effect yet. */
  readonly effectiveFrom: string | null;
  readonly quantity: string;
  readonly unitCost: string | null;
}

/**
 * Why no cost table can ever cost a metric's usage; null when one can. Only a count or a non-negative sum splits
 * into per-event shares a table costs at each event's date (store/usage.ts reads tables for those only, and a
 * cost_plus charge needs one: domain/charge-metric-fit.ts). A table on any other metric was stored and then silently
 * ignored: margins costed the metric at its flat unit_cost while finance believed the table applied.
 */
export function costTableMetricProblem(metric: { readonly code: string; readonly aggregation: string; readonly allowNegative: boolean }): string | null {
  if (metric.aggregation !== 'count' && metric.aggregation !== 'sum') {
    return `metric ${metric.code} is a ${metric.aggregation} metric: only count and sum metrics have per-event units a cost table can cost`;
  }
  if (metric.allowNegative) return `metric ${metric.code} allows negative values: a cost table cannot cost negative usage`;
  return null;
}

/** Thrown by the store before it writes a cost table no usage of its metric can ever be costed with. */
export class CostTableMetricMismatch extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CostTableMetricMismatch';
  }
}

/** At most this many entries per table: resolution is 2^d lookups whatever the size, validation is not. */
const MAX_ENTRIES = 5000;

/** The instants a table may take effect at: years 0001-9999 in UTC. */
const FIRST_INSTANT = Date.parse('0001-01-01T00:00:00.000Z');
const LAST_INSTANT = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * Whether an instant survives the trip through Postgres and back as costing sends it (toISOString, then
 * ::timestamptz). "0000-01-01T00:00:00Z" (stored as 1 BC, read back as year 0), "0000-01-01T00:00:00+01:00" (year
 * -1) and "9999-12-31T23:59:59-14:00" (year 10000) passed the API's RFC 3339 check, were stored, and then every
 * costing of the metric failed: toISOString writes "0000-...", "-000001-..." or "+010000-...", which Postgres
 * refuses (22007/22008), so the period close of every subscription charging the metric needed attention.
 */
function instantRoundTrips(at: number): boolean {
  return at >= FIRST_INSTANT && at <= LAST_INSTANT;
}

/** Why a cost table is unusable against its metric's group_by; empty when valid. */
export function validateCostTable(table: CostTable, groupBy: readonly string[]): string[] {
  if (table === null || typeof table !== 'object') return ['cost table must be an object'];
  const errors: string[] = [];
  if (typeof table.currency !== 'string' || !isSupportedCurrency(table.currency)) errors.push('currency must be a supported ISO 4217 code');
  if (typeof table.effectiveFrom !== 'string' || Number.isNaN(Date.parse(table.effectiveFrom))) errors.push('effective_from must be an RFC 3339 instant');
  else if (!instantRoundTrips(Date.parse(table.effectiveFrom))) errors.push('effective_from must fall between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z');
  if (!Array.isArray(table.entries) || table.entries.length === 0) return [...errors, 'costs must be a non-empty list'];
  if (table.entries.length > MAX_ENTRIES) return [...errors, `costs may hold at most ${MAX_ENTRIES} entries`];
  const seen = new Map<string, number>();
  table.entries.forEach((entry, index) => {
    const field = `costs[${index}]`;
    if (entry === null || typeof entry !== 'object' || entry.match === null || typeof entry.match !== 'object' || Array.isArray(entry.match)) {
      errors.push(`${field}.match must be an object of dimension values`);
      return;
    }
    for (const [name, value] of Object.entries(entry.match)) {
      if (!groupBy.includes(name)) errors.push(`${field}.match.${name} is not one of the metric's group_by (${groupBy.join(', ') || 'none'})`);
      if (typeof value !== 'string') errors.push(`${field}.match.${name} must be a string`);
    }
    if (typeof entry.unitCost !== 'string' || !isDecimalString(entry.unitCost) || toDecimal(entry.unitCost).lt(0)) {
      errors.push(`${field}.unit_cost must be a non-negative decimal string`);
    }
    const key = JSON.stringify(groupBy.filter((name) => entry.match[name] !== undefined).map((name) => [name, entry.match[name]]));
    const earlier = seen.get(key);
    if (earlier !== undefined) errors.push(`${field}.match repeats costs[${earlier}].match`);
    else seen.set(key, index);
  });
  if (errors.length === 0) {
    errors.push(...findAmbiguities(asPrices(table.entries), groupBy).map((message) => `ambiguous: ${message.replace(/prices\[/g, 'costs[').replace('add a price', 'add a cost')}`));
  }
  return errors;
}

/** Entries in the shape the dimension index reads (a per-unit price at the unit cost). */
function asPrices(entries: readonly CostEntry[]): DimensionPrice[] {
  return entries.map((entry) => ({ match: entry.match, price: { model: 'per_unit', unitPrice: entry.unitCost } }));
}

/**
 * A metric's tables of one currency, indexed for costing many combinations and instants. Tables of another currency
 * are refused: one timeline mixing them would cost an event with whichever was dated last, in either currency.
 */
export class CostTableIndex {
  private readonly tables: readonly { readonly table: CostTable; readonly at: number; readonly index: DimensionPriceIndex }[];

  constructor(
    tables: readonly CostTable[],
    readonly groupBy: readonly string[],
  ) {
    const currencies = new Set(tables.map((table) => table.currency));
    if (currencies.size > 1) throw new Error(`one cost timeline holds tables in ${[...currencies].sort().join(' and ')}: cost with one currency's tables`);
    this.tables = [...tables]
      .map((table) => ({ table, at: Date.parse(table.effectiveFrom), index: new DimensionPriceIndex({ groupBy, prices: asPrices(table.entries), unmatched: 'list' }) }))
      .sort((a, b) => a.at - b.at);
  }

  /** The table in effect at an instant (the latest effectiveFrom at or before it), or undefined before the first. */
  tableAt(at: Date | string): CostTable | undefined {
    return this.entryAt(typeof at === 'string' ? Date.parse(at) : at.getTime())?.table;
  }

  /** The unit cost of a combination under the table that took effect at `effectiveFrom`; null when nothing matches. */
  unitCost(effectiveFrom: string | null, dimensions: DimensionValues): string | null {
    if (effectiveFrom === null) return null;
    const entry = this.entryAt(Date.parse(effectiveFrom));
    const resolved = entry?.index.resolve(dimensions);
    return resolved && resolved.price.model === 'per_unit' ? resolved.price.unitPrice : null;
  }

  private entryAt(at: number) {
    let found: (typeof this.tables)[number] | undefined;
    for (const entry of this.tables) {
      if (entry.at <= at) found = entry;
      else break;
    }
    return found;
  }
}

/**
 * Segments of one combination's usage, as the store counted them per table in effect, with their unit costs
 * resolved. Segments of equal (table, unit cost) are kept apart per table so the breakdown names the table.
 */
export function costSegments(index: CostTableIndex, dimensions: DimensionValues, quantities: readonly { effectiveFrom: string | null; quantity: string }[]): CostSegment[] {
  return [...quantities]
    .sort((a, b) => (a.effectiveFrom ?? '') < (b.effectiveFrom ?? '') ? -1 : (a.effectiveFrom ?? '') > (b.effectiveFrom ?? '') ? 1 : 0)
    .map((entry) => ({ effectiveFrom: entry.effectiveFrom, quantity: entry.quantity, unitCost: index.unitCost(entry.effectiveFrom, dimensions) }));
}

/** Merges segments of several combinations or periods per (table, unit cost): a metric's whole-usage view. */
export function mergeSegments(segments: readonly CostSegment[]): CostSegment[] {
  const merged = new Map<string, { effectiveFrom: string | null; unitCost: string | null; quantity: Dec }>();
  for (const segment of segments) {
    const key = `${segment.effectiveFrom ?? ''}\u0000${segment.unitCost ?? ''}`;
    const current = merged.get(key) ?? { effectiveFrom: segment.effectiveFrom, unitCost: segment.unitCost, quantity: ZERO };
    current.quantity = current.quantity.plus(toDecimal(segment.quantity));
    merged.set(key, current);
  }
  return [...merged.values()].map((entry) => ({ effectiveFrom: entry.effectiveFrom, unitCost: entry.unitCost, quantity: entry.quantity.toFixed() }));
}

