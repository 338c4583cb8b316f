/**
 * Validation of incoming usage events, one by one, so a batch keeps its valid events when some are bad.
 * Pure: the caller supplies the clock, the customers it knows and the metrics of each event type.
 */
import { isDecimalString } from './money';

export type UsageEventRejection =
  | 'invalid_event'
  | 'unknown_customer'
  | 'invalid_timestamp'
  | 'timestamp_in_future'
  | 'missing_property'
  | 'non_numeric_property';

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
  readonly numeric: boolean;
  readonly filters: Record<string, unknown>;
}

export interface EventValidationContext {
  readonly now: Date;
  /** How far ahead of `now` a timestamp may be (clock skew). */
  readonly maxFutureMs: number;
  readonly customerIdByExternalId: ReadonlyMap<string, string>;
  readonly metricsByEventType: ReadonlyMap<string, readonly MetricRequirement[]>;
}

export type EventValidation =
  | { readonly ok: true; readonly customerId: string; readonly occurredAt: Date }
  | { readonly ok: false; readonly code: UsageEventRejection; readonly detail: string };

// RFC 3339 with an explicit zone: a timestamp without one is ambiguous, so it is refused.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** A numeric property is a decimal string, or a JSON integer small enough to be exact. */
export function isNumericPropertyValue(value: unknown): boolean {
  if (typeof value === 'number') return Number.isSafeInteger(value);
  return typeof value === 'string' && isDecimalString(value);
}

function matchesFilters(properties: Record<string, unknown>, filters: Record<string, unknown>): boolean {
  return Object.entries(filters).every(([key, expected]) => properties[key] === expected);
}

export function validateUsageEvent(event: RawUsageEvent, context: EventValidationContext): EventValidation {
  const customerId = context.customerIdByExternalId.get(event.customer);
  if (!customerId) return { ok: false, code: 'unknown_customer', detail: `no customer with external id ${event.customer}` };

  const occurredAt = new Date(event.timestamp);
  if (!RFC3339.test(event.timestamp) || Number.isNaN(occurredAt.getTime())) {
    return { ok: false, code: 'invalid_timestamp', detail: 'timestamp must be RFC 3339 with a zone, e.g. 2027-01-31T12:00:00Z' };
  }
  if (occurredAt.getTime() > context.now.getTime() + context.maxFutureMs) {
    return { ok: false, code: 'timestamp_in_future', detail: `timestamp is more than ${context.maxFutureMs / 1000}s in the future` };
  }

  // Only metrics whose filters select this event constrain its properties.
  for (const metric of context.metricsByEventType.get(event.type) ?? []) {
    if (!metric.property || !matchesFilters(event.properties, metric.filters)) continue;
    const value = event.properties[metric.property];
    if (value === undefined || value === null) {
      return { ok: false, code: 'missing_property', detail: `metric ${metric.code} needs property "${metric.property}"` };
    }
    if (metric.numeric && !isNumericPropertyValue(value)) {
      return {
        ok: false,
        code: 'non_numeric_property',
        detail: `metric ${metric.code} needs "${metric.property}" as a number (fractions as decimal strings, e.g. "12.50")`,
      };
    }
  }
  return { ok: true, customerId, occurredAt };
}
