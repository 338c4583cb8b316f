/**
 * Dimensional pricing: one charge prices every combination of a metric's `group_by` properties (model ×
 * direction, size, region...) from a list of `{ match, price }` plus an optional default price. Pure.
 *
 * Rules (docs/pricing.md):
 * - A match names some of the dimensions; a dimension it leaves out is a wildcard. Among the matches that fit a
 *   combination, the one naming the most dimensions wins. A catalog where two matches could tie is ambiguous and
 *   refused when the plan is created (`findAmbiguities`), so rating never has to guess.
 * - Each combination is rated on its own by the ordinary rating engine (domain/rating.ts): included units and
 *   tiers apply per combination. The credit bucket and the minimum commitment apply to the whole invoice, as
 *   for any other charge, because every combination goes through one `rateUsage` call.
 * - Usage with no matching price and no default is never billed silently at 0: the plan either refuses it at
 *   ingestion (`unmatched: "reject"`) or lists it as an unpriced line (`unmatched: "list"`).
 */
import { Dec, formatMoney, ZERO } from './money';
import { parseDecimal, validatePriceModel, type UsagePriceModel } from './price-models';
import type { CostSegment } from './cost-tables';
import { rateUsage, requireCostCurrency, type Charge, type RatedLine, type RatingInput, type RatingResult, type UsageForCharge } from './rating';

/** A combination's values, by dimension name. A dimension the event did not carry is absent. */
export type DimensionValues = Readonly<Record<string, string>>;

export interface DimensionPrice {
  /** The dimensions this price is for; the ones left out match any value. */
  readonly match: DimensionValues;
  readonly price: UsagePriceModel;
  /** Free units of each combination this price rates (defaults to the charge's includedUnits). */
  readonly includedUnits?: string;
}

/** What happens to usage no price matches when there is no default: refused at ingestion, or listed unpriced. */
export type UnmatchedUsagePolicy = 'reject' | 'list';

export interface ChargeDimensions {
  /** The metric's group_by properties, copied onto the charge when the plan is published (rating stays pure). */
  readonly groupBy: readonly string[];
  readonly prices: readonly DimensionPrice[];
  readonly defaultPrice?: UsagePriceModel;
  readonly unmatched: UnmatchedUsagePolicy;
}

/** A plan charge that may price per combination. `price` is the representative model (same family as the list). */
export type DimensionalCharge = Charge & { readonly dimensions?: ChargeDimensions };

/** One combination's aggregated usage. */
export interface UsageGroup {
  readonly dimensions: DimensionValues;
  readonly quantity: string;
  readonly eventCount?: number;
  readonly eventValues?: readonly string[];
  /** The combination's quantity per cost table in effect (domain/cost-tables.ts), for cost_plus prices. */
  readonly costs?: readonly CostSegment[];
}

/** A metric's usage, with its per-combination split when the metric groups by dimensions. */
export type DimensionalUsage = UsageForCharge & { readonly groups?: readonly UsageGroup[] };

export interface DimensionalRatingInput extends Omit<RatingInput, 'charges' | 'usage'> {
  readonly charges: readonly DimensionalCharge[];
  readonly usage: readonly DimensionalUsage[];
}

/** Usage of a combination nothing prices (policy "list"): shown on the invoice at 0, never silently dropped. */
export interface UnpricedUsage {
  readonly metricCode: string;
  readonly chargeId?: string;
  readonly dimensions: DimensionValues;
  readonly dimensionKey: string;
  readonly quantity: string;
}

/** Where a combination's price came from: an index into `prices`, or the default price. */
export type PriceSource = { readonly kind: 'match'; readonly index: number; readonly match: DimensionValues } | { readonly kind: 'default' };

export interface DimensionalRatingResult extends RatingResult {
  readonly unpriced: readonly UnpricedUsage[];
}

/** The extra fields a per-combination usage line carries (also copied into its breakdown, which the invoice stores). */
export interface CombinationFields {
  readonly dimensions: DimensionValues;
  readonly dimensionKey: string;
  readonly priceSource: PriceSource | null;
}

export type CombinationLine = Extract<RatedLine, { kind: 'usage' }> & CombinationFields;

/**
 * A combination's stable identity: `name=value` pairs in group_by order, values URI-encoded so a value with
 * `&` or `=` in it cannot collide with another combination. Absent dimensions are left out.
 */
export function dimensionKey(values: DimensionValues, groupBy: readonly string[] = Object.keys(values).sort()): string {
  // A plain loop: this runs for every combination of every rating (filter/map/join allocated three arrays).
  let key = '';
  for (const name of groupBy) {
    const value = values[name];
    if (value === undefined) continue;
    key += `${key === '' ? '' : '&'}${encodeURIComponent(name)}=${encodeURIComponent(value)}`;
  }
  return key;
}

/** "model=large, direction=output": how a combination reads on an invoice. */
export function dimensionLabel(values: DimensionValues, groupBy: readonly string[]): string {
  const parts = groupBy.filter((name) => values[name] !== undefined).map((name) => `${name}=${values[name]}`);
  return parts.length ? parts.join(', ') : 'no dimensions';
}

/**
 * The combination an event belongs to: its group_by property values as text, exactly as the close reads them in
 * Postgres (`properties ->> name`, store/dimension-usage.ts), so a combination is the same one at ingestion, on the
 * invoice and in a reversal's credit. Absent and null values are left out, as Postgres reads them as NULL.
 */
export function combinationOf(properties: Readonly<Record<string, unknown>>, groupBy: readonly string[]): DimensionValues {
  const values: Record<string, string> = {};
  for (const name of groupBy) {
    const value = properties[name];
    // A number JSON cannot hold (1e999 parses as Infinity) is stored as JSON null (JSON.stringify), so it is absent
    // in Postgres too; reading it as a number threw (new Dec("null")) and ingestion answered 500.
    if (value === undefined || value === null || (typeof value === 'number' && !Number.isFinite(value))) continue;
    values[name] = typeof value === 'string' ? value : jsonbText(value);
  }
  return values;
}

/**
 * The dimension key the running totals store for a combination (store/rollups.ts COMBINATION_KEY): the jsonb object
 * of its values as text, `{"direction": "input", "model": "large"}` (keys in jsonb's order; '{}' without any). The
 * totals' primary keys hold its sha256 (migration 0650), so any length can be stored; ingestion still bounds its
 * UTF-8 length (domain/usage-events.ts USAGE_EVENT_LIMITS.maxIndexedValueBytes) as an API rule.
 */
export function rollupDimensionKey(values: DimensionValues): string {
  const names = Object.keys(values).sort(compareJsonbKeys);
  return `{${names.map((name) => `${JSON.stringify(name)}: ${JSON.stringify(values[name])}`).join(', ')}}`;
}

/**
 * A JSON value as Postgres prints it out of jsonb: numbers as numeric (never an exponent: JSON.stringify wrote 1e21
 * as "1e+21", Postgres "1000000000000000000000"), and objects and arrays with a space after ":" and "," and object
 * keys shortest first, then by their UTF-8 bytes (jsonb's own order). Strings are escaped as JSON.stringify does.
 */
function jsonbText(value: unknown): string {
  // A non-finite number (1e999 parses as Infinity) is stored as null, as JSON.stringify writes it.
  if (typeof value === 'number') return Number.isFinite(value) ? new Dec(JSON.stringify(value)).toFixed() : 'null';
  if (Array.isArray(value)) return `[${value.map(jsonbText).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => compareJsonbKeys(a, b));
    return `{${entries.map(([key, child]) => `${JSON.stringify(key)}: ${jsonbText(child)}`).join(', ')}}`;
  }
  return JSON.stringify(value);
}

const utf8 = new TextEncoder();

function compareJsonbKeys(a: string, b: string): number {
  const [x, y] = [utf8.encode(a), utf8.encode(b)];
  if (x.length !== y.length) return x.length - y.length;
  for (let i = 0; i < x.length; i += 1) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}

/**
 * The price list of one charge, indexed for lookup: a combination of d dimensions is resolved with at most 2^d
 * map lookups (every subset of its values), whatever the number of prices.
 */
export class DimensionPriceIndex {
  private readonly byKey = new Map<string, number>();

  constructor(readonly dimensions: ChargeDimensions) {
    dimensions.prices.forEach((entry, index) => {
      const key = dimensionKey(entry.match, dimensions.groupBy);
      if (!this.byKey.has(key)) this.byKey.set(key, index);
    });
  }

  /** The most specific match for a combination, the default, or undefined when nothing prices it. */
  resolve(values: DimensionValues, key: string = dimensionKey(values, this.dimensions.groupBy)): { price: UsagePriceModel; includedUnits?: string; source: PriceSource } | undefined {
    const present = this.dimensions.groupBy.filter((name) => values[name] !== undefined);
    // Fast path: a price naming every dimension the usage has is the most specific there can be.
    const exact = this.byKey.get(key);
    let best: number | undefined = exact;
    let bestSize = exact === undefined ? -1 : present.length;
    // Subsets by bitmask; a catalog that passed findAmbiguities has exactly one best match.
    for (let mask = (1 << present.length) - 1; mask >= 0; mask -= 1) {
      const size = popCount(mask);
      if (size <= bestSize) continue;
      const subset: Record<string, string> = {};
      present.forEach((name, bit) => {
        if (mask & (1 << bit)) subset[name] = values[name];
      });
      const index = this.byKey.get(dimensionKey(subset, this.dimensions.groupBy));
      if (index !== undefined) {
        best = index;
        bestSize = size;
      }
    }
    if (best !== undefined) {
      const entry = this.dimensions.prices[best];
      return { price: entry.price, ...(entry.includedUnits === undefined ? {} : { includedUnits: entry.includedUnits }), source: { kind: 'match', index: best, match: entry.match } };
    }
    return this.dimensions.defaultPrice ? { price: this.dimensions.defaultPrice, source: { kind: 'default' } } : undefined;
  }
}

function popCount(mask: number): number {
  let count = 0;
  for (let rest = mask; rest; rest &= rest - 1) count += 1;
  return count;
}

/**
 * Pairs of matches that tie on some combination: both fit it, they name the same number of dimensions, and no
 * more specific match settles it. Checked on the combination both name (their union): any combination where the
 * two tie contains the union, and a match fitting the union fits it too.
 */
export function findAmbiguities(prices: readonly DimensionPrice[], groupBy: readonly string[]): string[] {
  const indexByKey = new Map<string, number>();
  prices.forEach((entry, index) => {
    const key = dimensionKey(entry.match, groupBy);
    if (!indexByKey.has(key)) indexByKey.set(key, index);
  });
  const problems: string[] = [];
  // Only matches of equal size can tie, and two matches naming the same dimensions with different values never
  // fit one combination. So compare only matches of equal size and different dimension sets, and among those only
  // the ones that agree on the dimensions both name (bucketed by those values): 2,000 prices check in milliseconds.
  const byNameSet = new Map<string, { names: string[]; indices: number[] }>();
  prices.forEach((entry, index) => {
    const names = groupBy.filter((name) => entry.match[name] !== undefined);
    const signature = names.join('\u0000');
    const set = byNameSet.get(signature) ?? { names, indices: [] };
    set.indices.push(index);
    byNameSet.set(signature, set);
  });
  const sets = [...byNameSet.values()];
  for (let i = 0; i < sets.length; i += 1) {
    for (let j = i + 1; j < sets.length; j += 1) {
      const [a, b] = [sets[i], sets[j]];
      if (a.names.length !== b.names.length) continue;
      const shared = a.names.filter((name) => b.names.includes(name));
      const bucket = new Map<string, number[]>();
      for (const index of b.indices) {
        const key = dimensionKey(prices[index].match, shared);
        bucket.set(key, [...(bucket.get(key) ?? []), index]);
      }
      for (const first of a.indices) {
        for (const second of bucket.get(dimensionKey(prices[first].match, shared)) ?? []) {
          const union = compatibleUnion(prices[first].match, prices[second].match)!;
          if (!settledByMoreSpecific(union, a.names.length, groupBy, indexByKey)) {
            const [low, high] = first < second ? [first, second] : [second, first];
            problems.push(`prices[${low}] and prices[${high}] both match ${dimensionLabel(union, groupBy)} equally; add a price matching exactly that combination`);
          }
        }
      }
    }
  }
  return problems;
}

/** a ∪ b when no dimension has two different values in them, else undefined (they never fit the same usage). */
function compatibleUnion(a: DimensionValues, b: DimensionValues): DimensionValues | undefined {
  const union: Record<string, string> = { ...a };
  for (const [name, value] of Object.entries(b)) {
    if (union[name] !== undefined && union[name] !== value) return undefined;
    union[name] = value;
  }
  return union;
}

/** Whether exactly one match larger than `size` fits `union` at the largest size found. */
function settledByMoreSpecific(union: DimensionValues, size: number, groupBy: readonly string[], indexByKey: ReadonlyMap<string, number>): boolean {
  const names = groupBy.filter((name) => union[name] !== undefined);
  let bestSize = size;
  let countAtBest = 0;
  for (let mask = 0; mask < 1 << names.length; mask += 1) {
    const subsetSize = popCount(mask);
    if (subsetSize <= size || subsetSize < bestSize) continue;
    const subset: Record<string, string> = {};
    names.forEach((name, bit) => {
      if (mask & (1 << bit)) subset[name] = union[name];
    });
    if (!indexByKey.has(dimensionKey(subset, groupBy))) continue;
    if (subsetSize > bestSize) {
      bestSize = subsetSize;
      countAtBest = 1;
    } else {
      countAtBest += 1;
    }
  }
  return countAtBest === 1;
}

const MAX_GROUP_BY = 8;

/** Why a metric's group_by list is unusable; empty when valid. More than 8 dimensions would make lookups 2^d. */
export function validateGroupBy(groupBy: unknown): string[] {
  if (!Array.isArray(groupBy)) return ['group_by must be a list of property names'];
  if (groupBy.length > MAX_GROUP_BY) return [`group_by may name at most ${MAX_GROUP_BY} properties`];
  if (groupBy.some((name) => typeof name !== 'string' || name === '')) return ['group_by entries must be non-empty strings'];
  if (new Set(groupBy).size !== groupBy.length) return ['group_by must not repeat a property'];
  return [];
}

/** Why a charge's dimensional prices are unusable (against its metric's group_by); empty when valid. */
export function validateChargeDimensions(dimensions: ChargeDimensions, metricGroupBy: readonly string[]): string[] {
  if (dimensions === null || typeof dimensions !== 'object') return ['dimensions must be an object'];
  const errors: string[] = [];
  if (metricGroupBy.length === 0) return ['dimensions need a metric with group_by properties'];
  if (!Array.isArray(dimensions.prices)) return ['dimensions.prices must be a list'];
  if (dimensions.unmatched !== 'reject' && dimensions.unmatched !== 'list') errors.push('dimensions.unmatched must be "reject" or "list"');

  const allPrices = [...dimensions.prices.map((entry) => entry?.price), ...(dimensions.defaultPrice ? [dimensions.defaultPrice] : [])];
  if (allPrices.length === 0) errors.push('dimensions need at least one price or a default price');
  const families = new Set(allPrices.map((price) => (price?.model === 'percentage' ? 'percentage' : 'quantity')));
  if (families.size > 1) errors.push('dimensions must price every combination as percentage, or none of them (one metric feeds them all)');

  const seen = new Map<string, number>();
  dimensions.prices.forEach((entry, index) => {
    const field = `dimensions.prices[${index}]`;
    if (entry === null || typeof entry !== 'object' || entry.match === null || typeof entry.match !== 'object' || Array.isArray(entry.match)) {
      errors.push(`${field}.match must be an object of dimension values`);
      return;
    }
    for (const [name, value] of Object.entries(entry.match)) {
      if (!metricGroupBy.includes(name)) errors.push(`${field}.match.${name} is not one of the metric's group_by (${metricGroupBy.join(', ')})`);
      if (typeof value !== 'string') errors.push(`${field}.match.${name} must be a string`);
    }
    errors.push(...priceErrors(`${field}.price`, entry.price, entry.includedUnits));
    const key = dimensionKey(entry.match, metricGroupBy);
    const earlier = seen.get(key);
    if (earlier !== undefined) errors.push(`${field}.match repeats dimensions.prices[${earlier}].match`);
    else seen.set(key, index);
  });
  if (dimensions.defaultPrice) errors.push(...priceErrors('dimensions.defaultPrice', dimensions.defaultPrice, undefined));
  if (errors.length === 0) errors.push(...findAmbiguities(dimensions.prices, metricGroupBy).map((message) => `dimensions: ambiguous: ${message}`));
  return errors;
}

function priceErrors(field: string, price: UsagePriceModel, includedUnits: string | undefined): string[] {
  const errors = validatePriceModel(price).map((message) => `${field}.${message}`);
  if (price?.model === ('flat' as string)) errors.push(`${field}: a flat price cannot price usage combinations`);
  if (includedUnits !== undefined) {
    const parsed = parseDecimal(includedUnits);
    if (parsed === undefined || parsed.lt(0)) errors.push(`${field}: includedUnits must be a non-negative decimal string`);
    if (price?.model === 'percentage' || price?.model === 'cost_plus') errors.push(`${field}: includedUnits does not apply to ${price.model} pricing`);
  }
  return errors;
}

/** A plan charge priced by dimensions. */
export function isDimensionalCharge(charge: Charge): charge is DimensionalCharge & { dimensions: ChargeDimensions } {
  return (charge as DimensionalCharge).dimensions !== undefined;
}

/** One combination of one charge, as `rateUsage` sees it: a charge of its own under an internal metric code. */
interface Expansion extends CombinationFields {
  readonly internalCode: string;
  readonly metricCode: string;
}

/** Per charge position: its priced combinations (in line order), its unpriced ones, or the code of a plain charge. */
interface ChargeLayout {
  readonly priced: Expansion[];
  readonly unpriced: UnpricedUsage[];
  readonly plainCode?: string;
}

/** A priced combination of one charge, as `rateUsage` sees it: built once per charge object and reused. */
interface CachedCombination {
  /** Rated under the internal metric code `<metric>#<charge position>#<key>`, unique within the plan. */
  readonly charge: Charge;
  readonly position: number;
  readonly source: PriceSource;
}

/**
 * What rating a dimensional charge needs besides the usage: its price index and its priced combinations (null:
 * nothing prices it). Charges are immutable values (rating.ts relies on that too), so this is computed once per
 * charge object; reusing the same Charge objects also lets rateUsage skip validating them again.
 */
interface ExpansionCache {
  readonly index: DimensionPriceIndex;
  /** By dimension key. */
  readonly combinations: Map<string, CachedCombination | null>;
}

const expansionCaches = new WeakMap<DimensionalCharge, ExpansionCache>();
const MAX_CACHED_COMBINATIONS = 20_000;

function expansionCacheOf(charge: DimensionalCharge & { dimensions: ChargeDimensions }): ExpansionCache {
  let cache = expansionCaches.get(charge);
  if (cache === undefined) {
    cache = { index: new DimensionPriceIndex(charge.dimensions), combinations: new Map() };
    expansionCaches.set(charge, cache);
  }
  return cache;
}

/** A combination's usage under its internal code (a literal per case: this runs once per combination per rating). */
function usageOfCombination(internalCode: string, group: UsageGroup): UsageForCharge {
  if (!group.eventValues && !group.costs) return { metricCode: internalCode, quantity: group.quantity };
  return { metricCode: internalCode, quantity: group.quantity, ...(group.eventValues ? { eventValues: group.eventValues } : {}), ...(group.costs ? { costs: group.costs } : {}) };
}

/** The charge one combination is rated as, under its internal code; null when no price matches it. */
function expandCombination(
  charge: DimensionalCharge & { dimensions: ChargeDimensions },
  position: number,
  index: DimensionPriceIndex,
  values: DimensionValues,
  key: string,
): CachedCombination | null {
  const resolved = index.resolve(values, key);
  if (!resolved) return null;
  const internalCode = `${charge.metricCode}#${position}#${key}`;
  const includedUnits = resolved.includedUnits ?? (resolved.price.model === 'percentage' || resolved.price.model === 'cost_plus' ? undefined : charge.includedUnits);
  return {
    charge: {
      ...chargeIdOf(charge),
      metricCode: internalCode,
      displayName: `${charge.displayName ?? charge.metricCode} (${dimensionLabel(values, charge.dimensions.groupBy)})`,
      price: resolved.price,
      ...(includedUnits === undefined ? {} : { includedUnits }),
    },
    position,
    source: resolved.source,
  };
}

/**
 * Rates a plan's usage, pricing each combination of a dimensional charge on its own; plain charges rate exactly
 * as `rateUsage` rates them (and a plan without dimensional charges goes straight to it). One `rateUsage` call
 * covers all lines, so the credit bucket and the minimum commitment apply to the whole invoice.
 *
 * Line order: charge order; within a dimensional charge, its combinations by key; unpriced combinations (policy
 * "list") sit after its priced ones at 0; then the credit and the true-up.
 */
export function rateDimensionalUsage(input: DimensionalRatingInput): DimensionalRatingResult {
  if (!input.charges.some(isDimensionalCharge)) return { ...rateUsage(input), unpriced: [] };
  // The combinations' usage rated below no longer carries its metric's cost currency: checked on the metric's.
  requireCostCurrency(input.usage, input.currency);

  const usageByMetric = new Map(input.usage.map((usage) => [usage.metricCode, usage]));
  const charges: Charge[] = [];
  const usage: UsageForCharge[] = [];
  const usedPlainMetrics = new Set<string>();
  /** Per charge position: its priced combinations (in line order) and its unpriced ones, or its plain code. */
  const layout: ChargeLayout[] = [];

  input.charges.forEach((charge, position) => {
    if (!isDimensionalCharge(charge)) {
      charges.push(charge);
      const metricUsage = usageByMetric.get(charge.metricCode);
      if (metricUsage && !usedPlainMetrics.has(charge.metricCode)) {
        usage.push(metricUsage);
        usedPlainMetrics.add(charge.metricCode);
      }
      // Flat charges are billed in advance: rateUsage gives them no usage line.
      layout.push({ priced: [], unpriced: [], ...(charge.price.model === 'flat' ? {} : { plainCode: charge.metricCode }) });
      return;
    }
    const { dimensions } = charge;
    const cache = expansionCacheOf(charge);
    const entry: ChargeLayout = { priced: [], unpriced: [] };
    for (const { group, key } of keyedGroupsOf(usageByMetric.get(charge.metricCode), dimensions.groupBy)) {
      let combination = cache.combinations.get(key);
      if (combination === undefined || (combination !== null && combination.position !== position)) {
        combination = expandCombination(charge, position, cache.index, group.dimensions, key);
        // (A charge object listed twice in one plan keeps the first position's entry; the other is rebuilt. A charge
        // object kept for long, e.g. a cached plan, stops caching past MAX_CACHED_COMBINATIONS: values come from events.)
        if (!cache.combinations.has(key) && cache.combinations.size < MAX_CACHED_COMBINATIONS) cache.combinations.set(key, combination);
      }
      if (combination === null) {
        entry.unpriced.push({ metricCode: charge.metricCode, ...chargeIdOf(charge), dimensions: group.dimensions, dimensionKey: key, quantity: group.quantity });
        continue;
      }
      const internalCode = combination.charge.metricCode;
      charges.push(combination.charge);
      usage.push(usageOfCombination(internalCode, group));
      entry.priced.push({ internalCode, metricCode: charge.metricCode, dimensions: group.dimensions, dimensionKey: key, priceSource: combination.source });
    }
    layout.push(entry);
  });

  const rated = rateUsage({ ...input, charges, usage });
  const lines = relabelInChargeOrder(rated.lines, layout, input.currency) ?? relabelByCode(rated.lines, layout, input.currency);
  return { ...rated, lines, unpriced: layout.flatMap((entry) => entry.unpriced) };
}

/**
 * The usage split per combination, in key order, each with its key (computed once); usage recorded without a
 * split counts as the combination with no dimensions.
 */
function keyedGroupsOf(usage: DimensionalUsage | undefined, groupBy: readonly string[]): { group: UsageGroup; key: string }[] {
  if (!usage) return [];
  if (usage.groups) {
    const keyed = usage.groups.map((group) => ({ group, key: dimensionKey(group.dimensions, groupBy) }));
    return keyed.sort((a, b) => compareText(a.key, b.key));
  }
  const hasUsage = !(parseDecimal(usage.quantity) ?? ZERO).isZero() || (usage.eventValues?.length ?? 0) > 0;
  const group: UsageGroup = { dimensions: {}, quantity: usage.quantity, ...(usage.eventValues ? { eventValues: usage.eventValues } : {}), ...(usage.costs ? { costs: usage.costs } : {}) };
  return hasUsage ? [{ group, key: dimensionKey(group.dimensions, groupBy) }] : [];
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Gives combination lines their real metric code and dimensions back, and slots the unpriced lines in place, by
 * walking the lines in order: rateUsage returns one usage line per usage charge in charge order, then the
 * plan-wide lines. Each line is checked against the charge it should belong to; on any surprise this gives up
 * (undefined) and `relabelByCode` matches lines by code instead, so the result never depends on the shortcut.
 */
function relabelInChargeOrder(lines: readonly RatedLine[], layout: readonly ChargeLayout[], currency: string): RatedLine[] | undefined {
  const ordered: RatedLine[] = [];
  let next = 0;
  for (const entry of layout) {
    if (entry.plainCode !== undefined) {
      const line = lines[next++];
      if (line?.kind !== 'usage' || line.metricCode !== entry.plainCode) return undefined;
      ordered.push(line);
      continue;
    }
    for (const expansion of entry.priced) {
      const line = lines[next++];
      if (line?.kind !== 'usage' || line.metricCode !== expansion.internalCode) return undefined;
      ordered.push(combinationLine(line, expansion));
    }
    for (const unpriced of entry.unpriced) ordered.push(unpricedLine(unpriced, currency));
  }
  for (; next < lines.length; next += 1) {
    const line = lines[next];
    if (line.kind === 'usage') return undefined;
    ordered.push(line.kind === 'credit' ? relabelCredit(line, allocatedExpansions(line, layout)) : line);
  }
  return ordered;
}

/** The combinations a credit line is allocated to (usually a few of many), by internal code. */
function allocatedExpansions(credit: RatedLine & { kind: 'credit' }, layout: readonly ChargeLayout[]): Map<string, Expansion> {
  const codes = new Set(credit.breakdown.allocations.map((allocation) => allocation.metricCode));
  const expansions = new Map<string, Expansion>();
  for (const entry of layout) for (const expansion of entry.priced) if (codes.has(expansion.internalCode)) expansions.set(expansion.internalCode, expansion);
  return expansions;
}

function expansionsByCode(layout: readonly ChargeLayout[]): Map<string, Expansion> {
  return new Map(layout.flatMap((entry) => entry.priced.map((expansion) => [expansion.internalCode, expansion] as const)));
}

/** The same relabelling, matching lines to charges by code (see relabelInChargeOrder). */
function relabelByCode(lines: readonly RatedLine[], layout: readonly ChargeLayout[], currency: string): RatedLine[] {
  const expansions = expansionsByCode(layout);
  const usageLines = new Map<string, RatedLine & { kind: 'usage' }>();
  const plainUsage: RatedLine[] = [];
  const others: RatedLine[] = [];
  for (const line of lines) {
    if (line.kind !== 'usage') others.push(line);
    else if (expansions.has(line.metricCode)) usageLines.set(line.metricCode, line);
    else plainUsage.push(line);
  }
  const ordered: RatedLine[] = [];
  let nextPlain = 0;
  for (const entry of layout) {
    if (entry.plainCode !== undefined) {
      // Plain usage lines come back from rateUsage in charge order.
      ordered.push(plainUsage[nextPlain]);
      nextPlain += 1;
      continue;
    }
    for (const expansion of entry.priced) ordered.push(combinationLine(usageLines.get(expansion.internalCode)!, expansion));
    for (const unpriced of entry.unpriced) ordered.push(unpricedLine(unpriced, currency));
  }
  return [...ordered, ...others.map((line) => (line.kind === 'credit' ? relabelCredit(line, expansions) : line))];
}

function combinationLine(line: RatedLine & { kind: 'usage' }, expansion: Expansion): CombinationLine {
  const { dimensions, dimensionKey: key, priceSource } = expansion;
  // The invoice stores the breakdown; the combination goes with it so re-rating and documents can read it.
  const breakdown = copyOf(line.breakdown);
  breakdown.dimensions = dimensions;
  breakdown.dimensionKey = key;
  breakdown.priceSource = priceSource;
  const combined = copyOf(line);
  combined.metricCode = expansion.metricCode;
  combined.breakdown = breakdown;
  combined.dimensions = dimensions;
  combined.dimensionKey = key;
  combined.priceSource = priceSource;
  return combined as unknown as CombinationLine;
}

/**
 * A shallow copy with the same fields in the same order, as `{ ...source }` makes, written as a loop: on the lines
 * rateUsage returns, V8 runs this about three times faster than a spread, and it runs once per combination.
 */
function copyOf(source: object): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const name in source) copy[name] = (source as Record<string, unknown>)[name];
  return copy;
}

function unpricedLine(unpriced: UnpricedUsage, currency: string): RatedLine {
  const label = Object.entries(unpriced.dimensions).map(([name, value]) => `${name}=${value}`).join(', ') || 'no dimensions';
  const fields: CombinationFields = { dimensions: unpriced.dimensions, dimensionKey: unpriced.dimensionKey, priceSource: null };
  return {
    kind: 'usage',
    description: `${unpriced.metricCode} (${label}): no price matches, not billed`,
    metricCode: unpriced.metricCode,
    quantity: unpriced.quantity,
    amount: formatMoney(ZERO, currency),
    ...chargeIdOf(unpriced),
    ...fields,
    breakdown: { model: 'unpriced', reason: 'no_matching_price', amount: '0', ...fields } as unknown as CombinationLine['breakdown'],
  } as RatedLine;
}

function relabelCredit(line: RatedLine & { kind: 'credit' }, expansions: ReadonlyMap<string, Expansion>): RatedLine {
  return {
    ...line,
    breakdown: {
      ...line.breakdown,
      allocations: line.breakdown.allocations.map((allocation) => {
        const expansion = expansions.get(allocation.metricCode);
        return expansion ? { ...allocation, metricCode: expansion.metricCode, dimensionKey: expansion.dimensionKey } : allocation;
      }),
    },
  };
}

function chargeIdOf(source: { readonly chargeId?: string }): { chargeId?: string } {
  return source.chargeId === undefined ? {} : { chargeId: source.chargeId };
}

/** The dimension key of a stored line (its breakdown carries it), or undefined for an ordinary line. */
export function dimensionKeyOfBreakdown(breakdown: unknown): string | undefined {
  const key = (breakdown as { dimensionKey?: unknown } | null | undefined)?.dimensionKey;
  return typeof key === 'string' ? key : undefined;
}

/** What ingestion needs to refuse usage nothing would price: a metric's filters and the plan's reject charges. */
export interface IngestionPricing {
  readonly metricCode: string;
  readonly filters: Readonly<Record<string, unknown>>;
  readonly charges: readonly (DimensionalCharge & { dimensions: ChargeDimensions })[];
}

/**
 * The first "reject" charge (policy `unmatched: "reject"`) that would find no price for this event's combination,
 * or undefined when every such charge prices it. Metrics whose filters the event does not meet are skipped: they
 * do not count it.
 */
export function unpricedByRejectingCharge(
  properties: Readonly<Record<string, unknown>>,
  pricing: readonly IngestionPricing[],
  indexes: Map<ChargeDimensions, DimensionPriceIndex> = new Map(),
): { metricCode: string; dimensionKey: string } | undefined {
  for (const { metricCode, filters, charges } of pricing) {
    if (!Object.entries(filters).every(([name, value]) => properties[name] === value)) continue;
    for (const charge of charges) {
      if (charge.dimensions.unmatched !== 'reject') continue;
      let index = indexes.get(charge.dimensions);
      if (!index) indexes.set(charge.dimensions, (index = new DimensionPriceIndex(charge.dimensions)));
      const combination = combinationOf(properties, charge.dimensions.groupBy);
      if (!index.resolve(combination)) return { metricCode, dimensionKey: dimensionKey(combination, charge.dimensions.groupBy) };
    }
  }
  return undefined;
}
