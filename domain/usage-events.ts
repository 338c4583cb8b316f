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

/**
 * A JSON number of a request that a JS number cannot carry as sent: past a double's range (`1e400` became Infinity,
 * stored as null), under it (`1e-400` became 0) or past its precision (`12345678901234567891` became
 * 12345678901234567000, so two distinct ids counted as one). The API puts this in its place when it parses an
 * ingestion body (api/exact-json-numbers.ts), so that validation refuses the event that holds it instead of
 * storing another value than the one sent. `text` is the number as sent.
 */
export class InexactJsonNumber {
  constructor(readonly text: string) {}
}

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

/** A stretch inside a subscription's life in which it gave no service: from a billed end to a win-back restart. */
export interface ServiceGap {
  readonly from: Date;
  readonly until: Date;
}

/**
 * A subscription's span less its service gaps: the pieces it bills. The first piece starts at the span's start (empty
 * when a gap starts there), so the subscription's start still counts as a start (`uncoveredStretches`); a piece is
 * never longer than the span, whatever the gaps say.
 */
export function spansAroundGaps(span: BilledSpan, gaps: readonly ServiceGap[]): BilledSpan[] {
  const pieces: BilledSpan[] = [];
  let start = span.start;
  for (const gap of [...gaps].sort((a, b) => a.from.getTime() - b.from.getTime())) {
    const end = span.end !== null && span.end < gap.from ? span.end : gap.from;
    pieces.push({ start, end });
    if (gap.until > start) start = gap.until;
  }
  pieces.push({ start, end: span.end });
  return pieces;
}

/** A stretch of a subscription's billed time under one plan version, and the event types that plan meters. */
export interface PricedStretch {
  readonly from: Date;
  /** Null: it goes on. */
  readonly until: Date | null;
  readonly eventTypes: ReadonlySet<string>;
}

/** A subscription's billed span with the plan changes in it: what `pricedStretches` cuts. */
export interface PlanHistory {
  readonly start: Date;
  readonly end: Date | null;
  /** The plan in force now (after the last change). */
  readonly planId: string;
  /** Each change's instant and the plan in force before it, in time order. */
  readonly changes: readonly { readonly at: Date; readonly oldPlanId: string }[];
}

/**
 * A subscription's billed span cut at its plan changes, each stretch with the event types of the plan in force in
 * it (as its usage close claims them). A span that ended before it started prices nothing.
 */
export function pricedStretches(history: PlanHistory, eventTypesOfPlan: (planId: string) => ReadonlySet<string>): PricedStretch[] {
  const stretches: PricedStretch[] = [];
  let from = history.start;
  const cut = (until: Date | null, planId: string) => {
    const to = until !== null && history.end !== null && history.end < until ? history.end : (until ?? history.end);
    if (to === null || to > from) stretches.push({ from, until: to, eventTypes: eventTypesOfPlan(planId) });
    if (to !== null && to > from) from = to;
  };
  for (const change of history.changes) if (change.at > from) cut(change.at, change.oldPlanId);
  cut(null, history.planId);
  return stretches;
}

/**
 * An event of a type some subscription of the customer prices, stamped where none of them prices it: refused with the
 * code of where it falls (before the first stretch that prices it, after the last, or between two), since no usage
 * close would claim it. A type none of them prices is stored as before: it bills nothing, whenever stamped.
 */
function unpricedAtItsTimeRejection(eventType: string, occurredAt: Date, stretches: readonly PricedStretch[] | undefined): EventValidation | undefined {
  const pricing = (stretches ?? []).filter((stretch) => stretch.eventTypes.has(eventType));
  const at = occurredAt.getTime();
  if (pricing.length === 0 || pricing.some(({ from, until }) => at >= from.getTime() && (until === null || at < until.getTime()))) return undefined;
  const next = pricing.filter(({ from }) => from.getTime() > at).sort((a, b) => a.from.getTime() - b.from.getTime())[0];
  const lastEnd = pricing.flatMap(({ until }) => (until !== null && until.getTime() <= at ? [until] : [])).sort((a, b) => b.getTime() - a.getTime())[0];
  const why = `no subscription of the customer prices events of type ${eventType} at this time, so no period could bill it`;
  if (next && lastEnd) {
    return { ok: false, code: 'timestamp_between_subscriptions', detail: `${why} (priced until ${lastEnd.toISOString()} and again from ${next.from.toISOString()})` };
  }
  if (next) return { ok: false, code: 'timestamp_before_subscription', detail: `${why} (priced from ${next.from.toISOString()})` };
  return { ok: false, code: 'timestamp_after_subscription_end', detail: `${why} (priced until ${lastEnd!.toISOString()})` };
}

/**
 * How far ahead of the server's clock an event's timestamp may be (client clock skew): ingestion refuses it beyond
 * (timestamp_in_future). So usage accepted before a subscription's end was decided may be stamped up to this much
 * after it, and the last usage close claims it (store/usage.ts `claimUsageAcceptedPastTheEnd`).
 */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

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
  /**
   * For customers with several subscriptions or a plan change (store/usage.ts `pricedStretchesOf`): which event types
   * each stretch of each subscription's time prices, by the plan in force then. A usage close claims only the event
   * types its plan meters, so an event of a type one of them prices, stamped where none prices it (before the
   * subscription that prices it starts, after it ends, under a plan that does not meter it), would never be billed.
   * Absent for everyone else: their one plan prices a type over the whole span or never.
   */
  readonly pricedStretchesByCustomerId?: ReadonlyMap<string, readonly PricedStretch[]>;
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
      detail: `timestamp is after a subscription's end (${uncovered.from.toISOString()}) and before the customer's next subscription starts or a won-back one restarts (${uncovered.until.toISOString()}); no period could bill it`,
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

/** The first property holding (at any depth) a number JSON parsing could not keep as sent, with that number. */
function inexactNumberIn(properties: Record<string, unknown>): { property: string; text: string } | undefined {
  for (const [property, value] of Object.entries(properties)) {
    const stack: unknown[] = [value];
    while (stack.length) {
      const item = stack.pop();
      if (item instanceof InexactJsonNumber) return { property, text: item.text };
      if (item !== null && typeof item === 'object') stack.push(...Object.values(item));
    }
  }
  return undefined;
}

/**
 * A number that would be stored as another value (null, 0, a rounded one) is refused wherever it is, read by a
 * metric or not: a metric created later reads the stored events too, and what is stored must be what was sent.
 */
function inexactNumberRejection(properties: Record<string, unknown>): EventValidation | undefined {
  const inexact = inexactNumberIn(properties);
  if (!inexact) return undefined;
  return {
    ok: false,
    code: 'value_out_of_range',
    property: inexact.property,
    detail: `property "${inexact.property}" holds the JSON number ${inexact.text.length > 40 ? `${inexact.text.slice(0, 40)}...` : inexact.text}, which cannot be read exactly (beyond a double's range or precision); send it as a string, or a decimal string with at most ${USAGE_EVENT_LIMITS.maxValueIntegerDigits} digits before the point and ${USAGE_EVENT_LIMITS.maxValueFractionDigits} after for a numeric metric`,
  };
}

export function validateUsageEvent(event: RawUsageEvent, context: EventValidationContext): EventValidation {
  const customerId = context.customerIdByExternalId.get(event.customer);
  if (!customerId) return { ok: false, code: 'unknown_customer', detail: `no customer with external id ${event.customer}` };

  const occurredAt = parseEventTimestamp(event.timestamp);
  if (!occurredAt) {
    return { ok: false, code: 'invalid_timestamp', detail: 'timestamp must be a real date and time in RFC 3339 with a zone, e.g. 2027-01-31T12:00:00Z' };
  }
  const rejection =
    inexactNumberRejection(event.properties) ??
    sizeRejection(event.properties) ??
    timestampRejection(occurredAt, customerId, context) ??
    unpricedAtItsTimeRejection(event.type, occurredAt, context.pricedStretchesByCustomerId?.get(customerId));
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
