/**
 * Validation of incoming usage events, one by one, so a batch keeps its valid events when some are bad.
 * Pure: the caller supplies the clock, the customers it knows, their first subscription start and the metrics of
 * each event type. What passes here must be billable: every bound below exists because a value past it once
 * stored fine and then broke the usage preview or the period invoice (docs/usage-events.md).
 */
import { isDecimalString } from './money';
import { combinationOf, rollupDimensionKey } from './dimensions';

export type UsageEventRejection =
  | 'invalid_event'
  | 'unknown_customer'
  | 'invalid_timestamp'
  | 'timestamp_in_future'
  | 'timestamp_before_subscription'
  | 'timestamp_after_subscription_end'
  | 'timestamp_between_subscriptions'
  | 'missing_property'
  | 'non_numeric_property'
  | 'negative_value'
  | 'value_out_of_range'
  | 'property_too_large'
  | 'event_too_large'
  | 'indexed_value_too_long';

/**
 * The bounds of an event, in one place.
 *
 * Quantities land in NUMERIC(30, 12) columns (invoice_lines.quantity and .amount, invoices.total, spending
 * alerts): 18 digits before the point, 12 after. A per-event value may have at most 12 integer digits (below
 * one trillion) and 12 fraction digits, so a period's sum overflows the column only past a million events each
 * at the very maximum, far beyond any real usage; a value of 18+ digits would overflow on its own.
 */
export const USAGE_EVENT_LIMITS = {
  /** Integer digits of one numeric property value (see above). */
  maxValueIntegerDigits: 12,
  /** Fraction digits of one numeric property value: the columns' scale. */
  maxValueFractionDigits: 12,
  /** UTF-8 bytes of one property value, as JSON (a string, number, object...). */
  maxPropertyValueBytes: 1_024,
  /** UTF-8 bytes of an event's whole `properties` object, as JSON. */
  maxPropertiesBytes: 16 * 1_024,
  /**
   * UTF-8 bytes of what the running totals index for an event (store/rollups.ts): the dimension key of its
   * combination of a grouped metric (the jsonb text `{"model": "large", ...}`), and the counted value of a
   * unique_count metric (its text as Postgres reads it). They were btree key columns (a btree entry holds at most
   * 2,704 bytes; past it every insert folding the event failed, 54000, and the whole batch with it); since migration
   * 0650 the keys hold their sha256 and storage takes any length. The bound stays an API rule: a combination key
   * is shown on invoice lines, the usage page and reports, and events already accepted under it stay valid.
   */
  maxIndexedValueBytes: 1_000,
} as const;

export interface RawUsageEvent {
  readonly id: string;
  readonly customer: string;
  readonly type: string;
  readonly timestamp: string;
  readonly properties: Record<string, unknown>;
}

/** What validation needs to know about the metrics reading an event type. */
export interface MetricRequirement {
  readonly code: string;
  readonly property: string | null;
  /** The property must be a number (sum/max/latest, and a count metric's per-event value). */
  readonly numeric: boolean;
  /** A corrections metric may take negative values; every other numeric metric refuses them. */
  readonly allowNegative: boolean;
  readonly filters: Record<string, unknown>;
  /** The metric's group_by properties: the combination's key is indexed by the running totals (absent: none). */
  readonly groupBy?: readonly string[];
  /** A unique_count metric: its counted value is indexed by the running totals. */
  readonly countsDistinct?: boolean;
}

/** A stretch of time no subscription of the customer bills: [from, until), open-ended when `until` is null. */
export interface UncoveredStretch {
  readonly from: Date;
  readonly until: Date | null;
}

/** A subscription's billed time: from its start to where its usage stops (null: it goes on). */
export interface BilledSpan {
  readonly start: Date;
  readonly end: Date | null;
}

/**
 * The stretches from the customer's first subscription start on that none of their subscriptions bills: the gaps in
 * the union of the spans, and the time after the last end, open-ended, once every span has ended. A subscription
 * that ended before it started bills nothing, but its start still counts as the first start (ingestion refuses
 * usage before it with its own code).
 */
export function uncoveredStretches(spans: readonly BilledSpan[]): UncoveredStretch[] {
  if (spans.length === 0) return [];
  const stretches: UncoveredStretch[] = [];
  let coveredUntil = new Date(Math.min(...spans.map((span) => span.start.getTime())));
  const billing = spans.filter((span) => span.end === null || span.end > span.start).sort((a, b) => a.start.getTime() - b.start.getTime());
  for (const span of billing) {
    if (span.start > coveredUntil) stretches.push({ from: coveredUntil, until: span.start });
    if (span.end === null) return stretches;
    if (span.end > coveredUntil) coveredUntil = span.end;
  }
  stretches.push({ from: coveredUntil, until: null });
  return stretches;
}

export interface EventValidationContext {
  readonly now: Date;
  /** How far ahead of `now` a timestamp may be (clock skew). */
  readonly maxFutureMs: number;
  readonly customerIdByExternalId: ReadonlyMap<string, string>;
  /**
   * The earliest subscription start of each customer (internal id). Usage before it belongs to no period and
   * could never be billed. A customer without any subscription is absent: their events are kept for a
   * subscription that may start back-dated (docs/usage-events.md).
   */
  readonly firstSubscriptionStartByCustomerId: ReadonlyMap<string, Date>;
  /**
   * The stretches after each customer's first subscription start that no subscription bills (store/usage.ts
   * `usageAcceptance`): between one's end and a later one's start, and from the last end on once every subscription
   * has ended or is ending. Usage stamped there would never be billed. Absent for a customer with none.
   */
  readonly uncoveredByCustomerId?: ReadonlyMap<string, readonly UncoveredStretch[]>;
  readonly metricsByEventType: ReadonlyMap<string, readonly MetricRequirement[]>;
}

export type EventValidation =
  | { readonly ok: true; readonly customerId: string; readonly occurredAt: Date }
  | { readonly ok: false; readonly code: UsageEventRejection; readonly detail: string; readonly property?: string };

// RFC 3339 with an explicit zone: a timestamp without one is ambiguous, so it is refused.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-](\d{2}):(\d{2}))$/;

function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
}

/**
 * The first instant a timestamptz column holds in ISO form: Postgres has no year 0, so "0000-..." (RFC 3339 allows
 * it), or 0001-01-01 with an offset east of UTC, would fail the batch's insert instead of being refused.
 */
const FIRST_STORABLE_INSTANT = Date.parse('0001-01-01T00:00:00Z');

/**
 * The instant of an RFC 3339 timestamp naming a real calendar date and time, else undefined. `Date` alone would
 * read 2026-02-30 as March 2; here every field is checked against the calendar (no leap seconds).
 */
export function parseEventTimestamp(text: string): Date | undefined {
  const match = RFC3339.exec(text);
  if (!match) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number);
  const offsetHour = match[9] === undefined ? 0 : Number(match[9]);
  const offsetMinute = match[10] === undefined ? 0 : Number(match[10]);
  const real =
    month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month) &&
    hour <= 23 && minute <= 59 && second <= 59 && offsetHour <= 23 && offsetMinute <= 59;
  if (!real) return undefined;
  const instant = new Date(text);
  return Number.isNaN(instant.getTime()) || instant.getTime() < FIRST_STORABLE_INSTANT ? undefined : instant;
}

/** A numeric property is a decimal string, or a JSON integer small enough to be exact. */
export function isNumericPropertyValue(value: unknown): boolean {
  if (typeof value === 'number') return Number.isSafeInteger(value);
  return typeof value === 'string' && isDecimalString(value);
}

/** The decimal text of a numeric property value (a JSON integer or a decimal string). */
function numericText(value: unknown): string {
  return typeof value === 'number' ? String(value) : (value as string);
}

/** Whether a numeric property value fits the per-event bounds of USAGE_EVENT_LIMITS. */
export function isWithinValueBounds(value: unknown): boolean {
  const [integer, fraction = ''] = numericText(value).replace(/^-/, '').split('.');
  return integer.replace(/^0+(?=\d)/, '').length <= USAGE_EVENT_LIMITS.maxValueIntegerDigits && fraction.length <= USAGE_EVENT_LIMITS.maxValueFractionDigits;
}

/**
 * A minus sign, "-0" included: aggregation reads a metric without allow_negative by an unsigned pattern
 * (store/usage.ts NUMERIC_TEXT), so "-0" would count as absent: a payment not counted, a `latest` not reset.
 * A JSON -0 is fine: its text is "0".
 */
function isNegative(value: unknown): boolean {
  return numericText(value).startsWith('-');
}

/** UTF-8 length of a string, without Node's Buffer (domain/ stays free of runtime APIs). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (const char of text) {
    const code = char.codePointAt(0)!;
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
  }
  return bytes;
}

function jsonBytes(value: unknown): number {
  return utf8Length(JSON.stringify(value) ?? '');
}

function matchesFilters(properties: Record<string, unknown>, filters: Record<string, unknown>): boolean {
  return Object.entries(filters).every(([key, expected]) => properties[key] === expected);
}

/** The more specific verdict first: one oversized value names its property; many modest ones, the event. */
function sizeRejection(properties: Record<string, unknown>): EventValidation | undefined {
  for (const [name, value] of Object.entries(properties)) {
    if (jsonBytes(value) > USAGE_EVENT_LIMITS.maxPropertyValueBytes) {
      return { ok: false, code: 'property_too_large', detail: `property "${name}" may take at most ${USAGE_EVENT_LIMITS.maxPropertyValueBytes} bytes as JSON` };
    }
  }
  if (jsonBytes(properties) > USAGE_EVENT_LIMITS.maxPropertiesBytes) {
    return { ok: false, code: 'event_too_large', detail: `properties may take at most ${USAGE_EVENT_LIMITS.maxPropertiesBytes} bytes as JSON` };
  }
  return undefined;
}

function timestampRejection(occurredAt: Date, customerId: string, context: EventValidationContext): EventValidation | undefined {
  if (occurredAt.getTime() > context.now.getTime() + context.maxFutureMs) {
    return { ok: false, code: 'timestamp_in_future', detail: `timestamp is more than ${context.maxFutureMs / 1000}s in the future` };
  }
  const firstStart = context.firstSubscriptionStartByCustomerId.get(customerId);
  if (firstStart && occurredAt.getTime() < firstStart.getTime()) {
    return {
      ok: false,
      code: 'timestamp_before_subscription',
      detail: `timestamp is before the customer's first subscription start (${firstStart.toISOString()}); no period could bill it`,
    };
  }
  const at = occurredAt.getTime();
  const uncovered = context.uncoveredByCustomerId?.get(customerId)?.find(({ from, until }) => at >= from.getTime() && (until === null || at < until.getTime()));
  if (uncovered?.until === null) {
    return {
      ok: false,
      code: 'timestamp_after_subscription_end',
      detail: `timestamp is at or after the end of the customer's last subscription (${uncovered.from.toISOString()}); no period could bill it`,
    };
  }
  if (uncovered) {
    return {
      ok: false,
      code: 'timestamp_between_subscriptions',
      detail: `timestamp is after a subscription's end (${uncovered.from.toISOString()}) and before the customer's next subscription starts (${uncovered.until.toISOString()}); no period could bill it`,
    };
  }
  return undefined;
}

function propertyRejection(metric: MetricRequirement, value: unknown): EventValidation | undefined {
  if (value === undefined || value === null) {
    return { ok: false, code: 'missing_property', detail: `metric ${metric.code} needs property "${metric.property}"` };
  }
  if (!metric.numeric) return undefined;
  if (!isNumericPropertyValue(value)) {
    return {
      ok: false,
      code: 'non_numeric_property',
      detail: `metric ${metric.code} needs "${metric.property}" as a number (fractions as decimal strings, e.g. "12.50")`,
    };
  }
  if (!isWithinValueBounds(value)) {
    const { maxValueIntegerDigits: integer, maxValueFractionDigits: fraction } = USAGE_EVENT_LIMITS;
    return { ok: false, code: 'value_out_of_range', detail: `"${metric.property}" may have at most ${integer} digits before the point and ${fraction} after` };
  }
  if (!metric.allowNegative && isNegative(value)) {
    return { ok: false, code: 'negative_value', detail: `metric ${metric.code} takes no negative "${metric.property}" (only a metric created with allow_negative does)` };
  }
  return undefined;
}

export function validateUsageEvent(event: RawUsageEvent, context: EventValidationContext): EventValidation {
  const customerId = context.customerIdByExternalId.get(event.customer);
  if (!customerId) return { ok: false, code: 'unknown_customer', detail: `no customer with external id ${event.customer}` };

  const occurredAt = parseEventTimestamp(event.timestamp);
  if (!occurredAt) {
    return { ok: false, code: 'invalid_timestamp', detail: 'timestamp must be a real date and time in RFC 3339 with a zone, e.g. 2027-01-31T12:00:00Z' };
  }
  const rejection = sizeRejection(event.properties) ?? timestampRejection(occurredAt, customerId, context);
  if (rejection) return rejection;

  // Only metrics whose filters select this event constrain its properties (and only they fold it into totals).
  for (const metric of context.metricsByEventType.get(event.type) ?? []) {
    if (!matchesFilters(event.properties, metric.filters)) continue;
    const propertyProblem = metric.property ? propertyRejection(metric, event.properties[metric.property]) : undefined;
    if (propertyProblem) return propertyProblem;
    const indexProblem = indexedValueRejection(metric, event.properties);
    if (indexProblem) return indexProblem;
  }
  return { ok: true, customerId, occurredAt };
}

/**
 * What the running totals would index for this event past USAGE_EVENT_LIMITS.maxIndexedValueBytes, for a metric it
 * feeds. The bytes are the very text store/rollups.ts writes (COMBINATION_KEY; `properties ->> property` for a
 * unique_count), so an event accepted here always fits its btree entries. Names the property to shorten: the
 * counted one, or the longest group_by value. Cheap: a metric without group_by or unique_count costs nothing.
 */
function indexedValueRejection(metric: MetricRequirement, properties: Record<string, unknown>): EventValidation | undefined {
  const limit = USAGE_EVENT_LIMITS.maxIndexedValueBytes;
  if (metric.countsDistinct) {
    // The rollups read `properties ->> coalesce(property, '')`: the same property name here.
    const name = metric.property ?? '';
    const value = combinationOf(properties, [name])[name];
    if (value !== undefined && utf8Length(value) > limit) {
      return { ok: false, code: 'indexed_value_too_long', property: name, detail: `metric ${metric.code} counts distinct values of "${name}": one may take at most ${limit} bytes as text (UTF-8)` };
    }
  }
  if (metric.groupBy?.length) {
    const values = combinationOf(properties, metric.groupBy);
    const bytes = utf8Length(rollupDimensionKey(values));
    if (bytes > limit) {
      const longest = Object.keys(values).reduce((a, b) => (utf8Length(values[b]) > utf8Length(values[a]) ? b : a));
      return {
        ok: false,
        code: 'indexed_value_too_long',
        property: longest,
        detail: `metric ${metric.code} groups by ${metric.groupBy.map((name) => `"${name}"`).join(', ')}: the combination's key would take ${bytes} bytes, at most ${limit} (as JSON text, UTF-8; "${longest}" is the longest value)`,
      };
    }
  }
  return undefined;
}
