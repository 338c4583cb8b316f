/**
 * Usage for the pricing simulation: recorded (a CSV file) or generated (synthetic, seeded, reproducible).
 *
 * CSV, one event per row, with a header row naming the columns (any order, extra columns ignored):
 *   full form     timestamp,type,properties[,customer][,id]     properties is a JSON object (quote it: "{""tokens"":12}")
 *   simple form   timestamp,event_type,property,value           one numeric property per event; leave property and
 *                                                               value empty for a counted event (no properties)
 * Timestamps are RFC 3339 with a zone (2027-01-31T12:00:00Z). A file holding several customers' usage needs
 * `--customer <id>` to pick one. `type` may also be spelled `event_type` in the full form.
 *
 * Generated: `--generate <event type>[:<property>]=<amount per month>[@<events per month>]`, e.g.
 *   llm.request:tokens=2000000@120    2,000,000 tokens a month over 120 events
 *   ticket.resolved=40                40 events a month, no properties (a counted outcome)
 * with `--growth <percent per month>` and `--seed <n>`; event times and sizes come from a seeded generator, so the
 * same arguments give the same usage.
 */
import Decimal from 'decimal.js';
import { Dec } from '../../domain/money';
import { addIntervals, parseInterval } from '../../domain/periods';

export interface UsageRecord {
  /** Stable within one usage set; becomes the event id (with a per-plan customer, so ids never collide). */
  readonly id: string;
  readonly timestamp: Date;
  readonly type: string;
  readonly properties: Record<string, unknown>;
}

export class UsageInputError extends Error {
  override name = 'UsageInputError';
}

const MONTH = parseInterval('P1M');
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

// ---------------------------------------------------------------------------------------------------------------
// CSV

/** RFC 4180: comma-separated, fields optionally in double quotes, "" for a quote inside, CRLF or LF. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let fieldStarted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
      continue;
    }
    if (c === '"' && !fieldStarted) {
      quoted = true;
      fieldStarted = true;
    } else if (c === ',') {
      row.push(field);
      field = '';
      fieldStarted = false;
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i += 1;
      row.push(field);
      if (row.length > 1 || row[0] !== '') rows.push(row);
      row = [];
      field = '';
      fieldStarted = false;
    } else {
      field += c;
      fieldStarted = true;
    }
  }
  if (quoted) throw new UsageInputError('CSV: a quoted field is not closed');
  if (fieldStarted || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

export interface CsvUsageOptions {
  /** Keep only this customer's rows (when the file has a customer column). */
  readonly customer?: string;
}

/** The usage of one customer from a CSV file's text (see the module comment for the two forms). */
export function parseUsageCsv(text: string, options: CsvUsageOptions = {}): UsageRecord[] {
  const [header, ...rows] = parseCsv(text.replace(/^\uFEFF/, ''));
  if (!header) throw new UsageInputError('CSV: the file is empty (it needs a header row)');
  const columns = new Map(header.map((name, index) => [name.trim().toLowerCase(), index]));
  const column = (...names: string[]): number | undefined => names.map((name) => columns.get(name)).find((index) => index !== undefined);
  const timestampAt = column('timestamp');
  const typeAt = column('type', 'event_type');
  const propertiesAt = column('properties');
  const propertyAt = column('property');
  const valueAt = column('value');
  const customerAt = column('customer');
  const idAt = column('id');
  if (timestampAt === undefined || typeAt === undefined) throw new UsageInputError(`CSV: the header needs "timestamp" and "type" (or "event_type"); it has ${header.join(',')}`);
  const simple = propertiesAt === undefined;
  if (simple && (propertyAt === undefined || valueAt === undefined)) {
    throw new UsageInputError('CSV: the header needs either "properties" (a JSON object) or "property" and "value"');
  }

  if (customerAt !== undefined && options.customer === undefined) {
    const customers = [...new Set(rows.map((row) => row[customerAt] ?? ''))];
    if (customers.length > 1) {
      throw new UsageInputError(`CSV: the file holds usage of ${customers.length} customers (${customers.slice(0, 5).join(', ')}${customers.length > 5 ? ', ...' : ''}); pick one with --customer`);
    }
  }

  const records: UsageRecord[] = [];
  rows.forEach((row, index) => {
    const line = index + 2;
    if (options.customer !== undefined && customerAt !== undefined && row[customerAt] !== options.customer) return;
    const timestamp = (row[timestampAt] ?? '').trim();
    if (!RFC3339.test(timestamp) || Number.isNaN(new Date(timestamp).getTime())) {
      throw new UsageInputError(`CSV line ${line}: timestamp ${JSON.stringify(timestamp)} is not RFC 3339 with a zone, e.g. 2027-01-31T12:00:00Z`);
    }
    const type = (row[typeAt] ?? '').trim();
    if (!type) throw new UsageInputError(`CSV line ${line}: the event type is empty`);
    let properties: Record<string, unknown> = {};
    if (simple) {
      const property = (row[propertyAt!] ?? '').trim();
      if (property) properties = { [property]: (row[valueAt!] ?? '').trim() };
    } else {
      const raw = (row[propertiesAt] ?? '').trim();
      if (raw) {
        try {
          properties = JSON.parse(raw) as Record<string, unknown>;
        } catch {
          throw new UsageInputError(`CSV line ${line}: properties is not JSON: ${raw.slice(0, 80)}`);
        }
        if (typeof properties !== 'object' || properties === null || Array.isArray(properties)) {
          throw new UsageInputError(`CSV line ${line}: properties must be a JSON object`);
        }
      }
    }
    const id = idAt !== undefined && row[idAt]?.trim() ? row[idAt].trim() : `row-${line}`;
    records.push({ id, timestamp: new Date(timestamp), type, properties });
  });
  return records;
}

// ---------------------------------------------------------------------------------------------------------------
// Generated usage

export interface GeneratorSpec {
  readonly eventType: string;
  /** The numeric property each event carries; absent for counted events. */
  readonly property: string | null;
  /** Per month: the property's total, or (without a property) the number of events. */
  readonly amountPerMonth: string;
  /** Events per month when there is a property (default 30). */
  readonly eventsPerMonth: number;
}

const SPEC = /^([A-Za-z0-9_.-]+)(?::([A-Za-z_][A-Za-z0-9_.-]*))?=(\d+(?:\.\d+)?)(?:@(\d+))?$/;

export function parseGeneratorSpec(text: string): GeneratorSpec {
  const match = SPEC.exec(text.trim());
  if (!match) throw new UsageInputError(`--generate ${text}: expected <event type>[:<property>]=<amount per month>[@<events per month>], e.g. llm.request:tokens=2000000@120`);
  const [, eventType, property, amount, events] = match;
  if (!property && amount.includes('.')) throw new UsageInputError(`--generate ${text}: without a property the amount is a number of events (a whole number)`);
  if (!property && events) throw new UsageInputError(`--generate ${text}: "@events" only goes with a property (without one, the amount is the number of events)`);
  const eventsPerMonth = events ? Number(events) : 30;
  if (eventsPerMonth < 1 || eventsPerMonth > 1_000_000) throw new UsageInputError(`--generate ${text}: events per month must be 1 to 1,000,000`);
  return { eventType, property: property ?? null, amountPerMonth: amount, eventsPerMonth };
}

export interface GeneratorOptions {
  readonly start: Date;
  readonly periods: number;
  /** Month-over-month growth in percent, e.g. "5" (may be negative). */
  readonly growthPercent?: string;
  readonly seed?: number;
}

/** A small, fast, seeded generator (mulberry32): reproducible usage, nothing cryptographic about it. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * Monthly usage for `periods` months from `start`: each month's amount (grown by `growthPercent` a month) is split
 * over the month's events in seeded random shares that add up exactly (in the amount's own decimals), at seeded
 * random instants of the month.
 */
export function generateUsage(specs: readonly GeneratorSpec[], options: GeneratorOptions): UsageRecord[] {
  const random = seededRandom(options.seed ?? 1);
  const growth = new Dec(1).plus(new Dec(options.growthPercent ?? '0').dividedBy(100));
  const records: UsageRecord[] = [];
  specs.forEach((spec, specIndex) => {
    const scale = spec.amountPerMonth.split('.')[1]?.length ?? 0;
    for (let month = 0; month < options.periods; month += 1) {
      const from = addIntervals(options.start, MONTH, month).getTime();
      const to = addIntervals(options.start, MONTH, month + 1).getTime();
      const amount = new Dec(spec.amountPerMonth).times(growth.pow(month)).toDecimalPlaces(scale, Decimal.ROUND_HALF_UP);
      const count = spec.property ? spec.eventsPerMonth : amount.toNumber();
      const values = spec.property ? splitAmount(amount, scale, count, random) : [];
      const instants = Array.from({ length: count }, () => from + Math.floor(random() * (to - from))).sort((a, b) => a - b);
      instants.forEach((instant, index) => {
        records.push({
          id: `gen-${specIndex}-${month}-${index}`,
          timestamp: new Date(instant),
          type: spec.eventType,
          properties: spec.property ? { [spec.property]: values[index] } : {},
        });
      });
    }
  });
  return records.sort((a, b) => a.timestamp.getTime() - b.timestamp.getTime() || (a.id < b.id ? -1 : 1));
}

/** `amount` in `count` random non-negative shares that add up to it exactly, as decimal strings with `scale` decimals. */
function splitAmount(amount: Decimal, scale: number, count: number, random: () => number): string[] {
  const units = BigInt(amount.times(new Dec(10).pow(scale)).toFixed(0));
  const weights = Array.from({ length: count }, () => BigInt(1 + Math.floor(random() * 1000)));
  const weightSum = weights.reduce((sum, weight) => sum + weight, 0n);
  const shares = weights.map((weight) => (units * weight) / weightSum);
  shares[count - 1] += units - shares.reduce((sum, share) => sum + share, 0n);
  return shares.map((share) => new Dec(share.toString()).dividedBy(new Dec(10).pow(scale)).toFixed(scale));
}

/** The start of the UTC calendar month holding `instant`: the first period of usage that starts then. */
export function startOfUtcMonth(instant: Date): Date {
  return new Date(Date.UTC(instant.getUTCFullYear(), instant.getUTCMonth(), 1));
}
