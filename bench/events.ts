/**
 * Deterministic usage events for the ingestion benchmarks: the same index always yields the same event, so
 * ours and the baseline store exactly the same rows. Shaped like real LLM metering: a numeric property the
 * `tokens` metric sums, plus a couple of descriptive ones.
 */
import type { NewUsageEvent } from '../store/usage';

export const EVENT_TYPE = 'llm.request';

export interface ApiUsageEvent {
  readonly id: string;
  readonly customer: string;
  readonly type: string;
  readonly timestamp: string;
  readonly properties: Record<string, unknown>;
}

export interface EventSource {
  /** Distinguishes phases (warm-up, measured) so their ids never collide. */
  readonly idPrefix: string;
  readonly customerExternalIds: readonly string[];
  /** One fixed, recent time for every event: validation rejects times in the future. */
  readonly timestamp: string;
}

const MODELS = ['gpt-small', 'gpt-large', 'embed-v2'];

export function apiEvent(source: EventSource, index: number): ApiUsageEvent {
  return {
    id: `${source.idPrefix}-${index}`,
    customer: source.customerExternalIds[index % source.customerExternalIds.length],
    type: EVENT_TYPE,
    timestamp: source.timestamp,
    properties: { tokens: 100 + ((index * 7919) % 4000), model: MODELS[index % MODELS.length], region: 'eu-west-1' },
  };
}

/** The row ingestion would store for `apiEvent(source, index)`, for the insert baseline. */
export function storedEvent(source: EventSource, customerIds: readonly string[], index: number): NewUsageEvent {
  const event = apiEvent(source, index);
  return {
    customerId: customerIds[index % customerIds.length],
    eventId: event.id,
    eventType: event.type,
    occurredAt: new Date(event.timestamp),
    properties: event.properties,
  };
}

/** Request bodies, already serialized: `{ "events": [...] }` per batch, or the bare event when batchSize is 1. */
export function requestBodies(source: EventSource, eventCount: number, batchSize: number): Buffer[] {
  const bodies: Buffer[] = [];
  for (let start = 0; start < eventCount; start += batchSize) {
    const size = Math.min(batchSize, eventCount - start);
    const body =
      batchSize === 1
        ? apiEvent(source, start)
        : { events: Array.from({ length: size }, (_, offset) => apiEvent(source, start + offset)) };
    bodies.push(Buffer.from(JSON.stringify(body)));
  }
  return bodies;
}
