import express, { type Router } from 'express';
import { EventValidation, EventValidationContext, MAX_CLOCK_SKEW_MS, MetricRequirement, RawUsageEvent, validateUsageEvent } from '../../domain/usage-events';
import { unpricedByRejectingCharge } from '../../domain/dimensions';
import { isDecimalString, toDecimal } from '../../domain/money';
import type { Database } from '../../store/database';
import { rejectingDimensionalCharges } from '../../store/dimension-pricing';
import { judgeReversal } from '../../domain/reversals';
import { disputeWindows, insertReversalEvents, NewReversalEvent, openOriginalsOf, reversalTargets } from '../../store/reversals';
import { MetricCatalog, MetricRow, readsNumericProperty } from '../../store/catalog';
import { compareWithStoredEvents, insertUsageEvents, pricedStretchesOf, NewUsageEvent, ResentUsageEvent, usageAcceptance, usageStopAt, type SubscriptionPricedStretch, type UsageRefusal, type UsageStop } from '../../store/usage';
import { hardLimitsOf, insertReversalEventsWithinLimits, insertUsageEventsWithinLimits, limitsOfOwnUsage } from '../../store/entitlements';
import { ApiProblem, FieldError } from '../problem';
import { usageEventBody, usageEventsEnvelope } from '../schemas';
import type { CustomerDirectory } from '../customer-directory';
import type { UsageSignalCoalescer } from '../usage-signals';
import { declareRoutes } from '../route-declarations';
import { creditReversalsOfEndedSubscriptions } from '../../store/reversal-credit-notes';
import { executeRefund } from '../../payments/refunds';
import type { PaymentGateway } from '../../payments/gateway';


interface Rejection extends FieldError {
  readonly index: number;
  readonly code: string;
}

export interface EventsRouterDependencies {
  readonly db: Database;
  readonly metrics: MetricCatalog;
  readonly customers: CustomerDirectory;
  readonly usageSignals?: UsageSignalCoalescer;
  /** Told which customers' balances moved, after commit (auto-recharge and wallet webhooks: api/wallet-signals.ts). */
  readonly walletWatcher?: { record(customerId: string): void };
  readonly now?: () => Date;
  /** Refunds the credit notes of reversals on ended subscriptions (store/reversal-credit-notes.ts). */
  readonly gateway?: PaymentGateway;
  /** Told what each request did (Prometheus counters; see api/observability.ts). */
  readonly onIngested?: (outcome: { accepted: number; duplicates: number; rejected: number }) => void;
}

/**
 * POST /v1/events: one event or a batch of up to 1,000. Each event is judged on its own: the valid ones are
 * stored (exactly once: resends are counted as duplicates), the others are reported by index with a code.
 */
export function eventsRouter(deps: EventsRouterDependencies): Router {
  const routes = declareRoutes();

  routes.post('/', { allow: ['app'] }, express.json({ limit: '5mb' }), async (req, res) => {
    const envelope = usageEventsEnvelope.parse(req.body);
    const items: unknown[] = 'events' in envelope && Array.isArray(envelope.events) ? envelope.events : [envelope];

    const rejections: Rejection[] = [];
    const shaped: { index: number; event: RawUsageEvent & { reverses?: string } }[] = [];
    items.forEach((item, index) => {
      const parsed = usageEventBody.safeParse(item);
      if (parsed.success) shaped.push({ index, event: parsed.data });
      else rejections.push({ index, code: 'invalid_event', path: `events.${index}`, message: parsed.error.issues.map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`).join('; ') });
    });

    const now = deps.now?.() ?? new Date();
    const customerIdByExternalId = await deps.customers.resolve(shaped.map(({ event }) => event.customer));
    const customerIds = [...customerIdByExternalId.values()];
    // Independent reads: one round trip's wait instead of three in a row on every ingestion request.
    // First starts come from a cache that may be stale only towards later starts: it can wrongly refuse, never
    // wrongly accept, so a refusal for a pre-start timestamp is confirmed against Postgres below.
    const [firstSubscriptionStartByCustomerId, metrics, { stops, severalPlans, uncovered: uncoveredByCustomerId }, declaredLimits] = await Promise.all([
      deps.customers.cachedFirstStarts(customerIds),
      deps.metrics.metricsFor(new Set(shaped.map(({ event }) => event.type))),
      usageAcceptance(deps.db, customerIds),
      hardLimitsOf(deps.db, customerIds),
    ]);
    // Which types each subscription prices when: asked only for customers whose several plans may differ in time.
    const pricedStretchesByCustomerId = await pricedStretchesOf(deps.db, [...severalPlans]);
    // A feature limit counts and refuses only its own subscription's usage, as blocks and caps do (store/entitlements.ts).
    const hardLimits = limitsOfOwnUsage(declaredLimits, pricedStretchesByCustomerId);
    const context: EventValidationContext = {
      now,
      maxFutureMs: MAX_CLOCK_SKEW_MS,
      customerIdByExternalId,
      firstSubscriptionStartByCustomerId,
      uncoveredByCustomerId,
      pricedStretchesByCustomerId,
      metricsByEventType: toRequirements(metrics),
    };
    const unpriced = await unpricedUsageCheck(deps.db, metrics, customerIds, now);
    const reversal = await reversalCheck(deps.db, shaped, customerIds);
    // A reversal carries no usage of its own: its metric properties are not required, and it may come after the
    // subscription ended (its credit is a credit note then).
    const judge = (event: RawUsageEvent & { reverses?: string }, judged: EventValidationContext) =>
      validateUsageEvent(event, event.reverses !== undefined ? { ...judged, metricsByEventType: new Map(), uncoveredByCustomerId: new Map(), pricedStretchesByCustomerId: new Map() } : judged);
    const verdicts = shaped.map(({ event }) => judge(event, context));
    const beforeCachedStart = verdicts.flatMap((verdict, i) => (!verdict.ok && verdict.code === 'timestamp_before_subscription' ? [i] : []));
    if (beforeCachedStart.length) {
      const fresh = await deps.customers.freshFirstStarts([...new Set(beforeCachedStart.map((i) => customerIdByExternalId.get(shaped[i].event.customer)!))]);
      const freshContext: EventValidationContext = { ...context, firstSubscriptionStartByCustomerId: fresh };
      for (const i of beforeCachedStart) verdicts[i] = judge(shaped[i].event, freshContext);
    }
    const resentReversals = await reversalsStoredAsSent(deps.db, shaped, verdicts);
    const valid: NewUsageEvent[] = [];
    const validIndexes: number[] = [];
    const reversals: NewReversalEvent[] = [];
    const reversalIndexes: number[] = [];
    for (const [position, { index, event }] of shaped.entries()) {
      const verdict = verdicts[position];
      if (event.reverses !== undefined) {
        // A reversal already stored as sent is a resend: judged again it would find its own work ("already
        // reversed") and refuse a retry; it goes on to the insert and is counted a duplicate. Another reversal of the
        // same event earlier in the batch is refused, an identical copy (same id) is not (a duplicate or a conflict).
        const resent = resentReversals.has(position);
        const judged = resent || !verdict.ok ? verdict : reversal(verdict.customerId, verdict.occurredAt, event.reverses);
        const twin = reversals.some((other) => verdict.ok && other.customerId === verdict.customerId && other.reversesEventId === event.reverses && other.eventId !== event.id);
        if (verdict.ok && judged.ok && (resent || !twin)) {
          reversals.push({ customerId: verdict.customerId, eventId: event.id, eventType: event.type, occurredAt: verdict.occurredAt, properties: event.properties, reversesEventId: event.reverses });
          reversalIndexes.push(index);
        } else {
          const code = judged.ok ? 'event_already_reversed' : judged.code;
          const detail = judged.ok ? `event ${event.reverses} is reversed earlier in this batch` : judged.detail;
          rejections.push({ index, code, path: `events.${index}.reverses`, message: detail });
        }
        continue;
      }
      // A block or a cap is judged by the event's time, not the request's (usage stamped before a suspension began
      // is billed by its period; usage of a pause or of a capped period is refused after it too), and only where the
      // subscription that prices the event's type then is the one blocked or capped.
      const stop = verdict.ok ? usageStopAt(stops.get(verdict.customerId), verdict.occurredAt, event.type, pricedStretchesByCustomerId.get(verdict.customerId)) : undefined;
      const blocked = stop?.refusal;
      // Past the hard cap only what could add spend is refused: a correction only lowers it, and refused now it
      // could only come back as late usage, the customer billed meanwhile for the usage it takes back.
      const capped = blocked === 'usage_cap_reached' && onlyLowersUsage(event, metrics) ? undefined : blocked;
      const refusal = verdict.ok ? (capped ?? unpriced(verdict.customerId, event)) : undefined;
      if (verdict.ok && !refusal) {
        validIndexes.push(index);
        valid.push({ customerId: verdict.customerId, eventId: event.id, eventType: event.type, occurredAt: verdict.occurredAt, properties: event.properties });
      } else if (typeof refusal === 'object') {
        rejections.push({ index, code: 'no_matching_price', path: `events.${index}.properties`, message: refusal.detail });
      } else if (refusal) {
        const detail = refusal === 'usage_blocked' ? "the subscription is paused or suspended at the event's time (usage is refused then)" : "the plan's usage cap for the event's period is reached";
        rejections.push({ index, code: refusal, path: `events.${index}`, message: detail });
      } else if (!verdict.ok) {
        const path = verdict.property === undefined ? `events.${index}` : `events.${index}.properties.${verdict.property}`;
        rejections.push({ index, code: verdict.code, path, message: verdict.detail });
      }
    }
    // A reversal of a correction adds usage at the correction's time, as an increase does: refused as one where a
    // block or a spending cap refuses usage then.
    const stopped = await reversalsRefusedByStops(deps, reversals, stops, pricedStretchesByCustomerId);
    for (const [position, refusal] of [...stopped].sort(([a], [b]) => b - a)) {
      const index = reversalIndexes[position];
      rejections.push({ index, code: refusal, path: `events.${index}.reverses`, message: REVERSAL_REFUSALS[refusal] });
      reversals.splice(position, 1);
      reversalIndexes.splice(position, 1);
    }
    if (valid.length === 0 && reversals.length === 0) {
      rejections.sort((a, b) => a.index - b.index);
      deps.onIngested?.({ accepted: 0, duplicates: 0, rejected: rejections.length });
      throw new ApiProblem('batch_rejected', `all ${items.length} event(s) were rejected; nothing was stored`, rejections);
    }
    // Plans with hard feature limits (docs/wallets.md): what would pass a limit is refused in the insert's transaction.
    const { inserted: insertedUsage, overLimit } =
      hardLimits.size === 0 ? { inserted: await insertUsageEvents(deps.db, valid), overLimit: new Set<number>() } : await insertUsageEventsWithinLimits(deps.db, valid, hardLimits);
    for (const position of overLimit) {
      const index = validIndexes[position];
      rejections.push({ index, code: 'entitlement_limit_reached', path: `events.${index}`, message: "the plan's limit for this feature in the current period is reached" });
    }
    // A reversal of a negative correction raises the usage: held to the same limits (store/entitlements.ts).
    const { inserted: insertedReversals, overLimit: reversalsOverLimit } =
      hardLimits.size === 0 ? { inserted: await insertReversalEvents(deps.db, reversals), overLimit: new Set<number>() } : await insertReversalEventsWithinLimits(deps.db, reversals, hardLimits);
    for (const position of reversalsOverLimit) {
      const index = reversalIndexes[position];
      rejections.push({ index, code: 'entitlement_limit_reached', path: `events.${index}.reverses`, message: "reversing this event would take the usage past the plan's limit for this feature in the current period" });
    }
    const inserted = [...insertedUsage, ...insertedReversals];
    const attempted: { index: number; event: ResentUsageEvent }[] = [
      ...valid.flatMap((event, position) => (overLimit.has(position) ? [] : [{ index: validIndexes[position], event }])),
      ...reversals.flatMap((event, position) => (reversalsOverLimit.has(position) ? [] : [{ index: reversalIndexes[position], event }])),
    ];
    const refusedResends = await resendsNotStored(deps.db, attempted, inserted);
    rejections.push(...refusedResends.values());
    rejections.sort((a, b) => a.index - b.index);
    // No invoice will come for an ended subscription: its reversal credits become credit notes now.
    // The events are stored either way: a credit that fails now stays owed, and the janitor issues it
    // (finding `reversal_credit_owed`), as does the customer's next reversal (one pass covers every owed one).
    if (insertedReversals.length) await creditEndedSubscriptions(deps, insertedReversals.map((row) => row.customer_id)).catch(() => undefined);
    const stored = attempted.filter((_, position) => !refusedResends.has(position)).map(({ event }) => event);
    if (stored.length === 0) {
      deps.onIngested?.({ accepted: 0, duplicates: 0, rejected: rejections.length });
      throw new ApiProblem('batch_rejected', `all ${items.length} event(s) were rejected; nothing was stored`, rejections);
    }
    reportToWorkflows(deps.usageSignals, stored, inserted);
    for (const customerId of new Set(inserted.map((row) => row.customer_id))) deps.walletWatcher?.record(customerId);
    deps.onIngested?.({ accepted: inserted.length, duplicates: stored.length - inserted.length, rejected: rejections.length });
    res.status(200).json({
      accepted: inserted.length,
      duplicates: stored.length - inserted.length,
      rejected: rejections.length,
      errors: rejections.map(({ index, code, message }) => ({ index, code, detail: message })),
    });
  });

  return routes.router;
}

/**
 * The positions (in `shaped`) of the reversals whose (customer, event id) already holds this very reversal: resends.
 * One query, only for a batch with reversals.
 */
async function reversalsStoredAsSent(
  db: Database,
  shaped: readonly { event: RawUsageEvent & { reverses?: string } }[],
  verdicts: readonly EventValidation[],
): Promise<Set<number>> {
  const candidates = shaped.flatMap(({ event }, position) => {
    const verdict = verdicts[position];
    return event.reverses !== undefined && verdict.ok
      ? [{ position, event: { customerId: verdict.customerId, eventId: event.id, eventType: event.type, occurredAt: verdict.occurredAt, properties: event.properties, reversesEventId: event.reverses } }]
      : [];
  });
  if (candidates.length === 0) return new Set();
  const matches = await compareWithStoredEvents(db, candidates.map(({ event }) => event));
  return new Set(candidates.flatMap(({ position }, i) => (matches[i].kind === 'same' ? [position] : [])));
}

/**
 * The events of `attempted` that were not stored and must not be acknowledged as duplicates, by position, as
 * rejections. An event id names one event: a resend whose stored event has another type, instant or properties
 * (from an earlier request, a racing one, or earlier in this batch) is refused as `event_id_conflict`, as a reused
 * idempotency key with other parameters is, never counted a duplicate while the old value is billed; an identical
 * resend stays a duplicate (docs/usage-events.md, "Resends"). A reversal that lost a race to another reversal of
 * the same event is stored nowhere: `event_already_reversed`. When every event was inserted (no id repeated or
 * taken) it costs nothing: no query.
 */
async function resendsNotStored(
  db: Database,
  attempted: readonly { index: number; event: ResentUsageEvent }[],
  inserted: readonly { customer_id: string; event_id: string }[],
): Promise<Map<number, Rejection>> {
  const refused = new Map<number, Rejection>();
  if (inserted.length === attempted.length) return refused;
  const keyOf = (customerId: string, eventId: string) => JSON.stringify([customerId, eventId]);
  const insertedKeys = new Set(inserted.map((row) => keyOf(row.customer_id, row.event_id)));
  const copies = new Map<string, number>();
  for (const { event } of attempted) copies.set(keyOf(event.customerId, event.eventId), (copies.get(keyOf(event.customerId, event.eventId)) ?? 0) + 1);
  // Not inserted, or one of several copies in this batch (one of which was inserted, maybe not this one).
  const suspects = attempted.flatMap((item, position) => {
    const key = keyOf(item.event.customerId, item.event.eventId);
    return !insertedKeys.has(key) || copies.get(key)! > 1 ? [position] : [];
  });
  const matches = await compareWithStoredEvents(db, suspects.map((position) => attempted[position].event));
  suspects.forEach((position, i) => {
    const match = matches[i];
    const { index, event } = attempted[position];
    if (match.kind === 'different') {
      refused.set(position, {
        index,
        code: 'event_id_conflict',
        path: `events.${index}.id`,
        message: `event id ${event.eventId} is already stored as usage event ${match.storedId}, which differs in ${match.differs.join(', ')}; nothing was changed. Send a correction under a new id, or reverse the stored event`,
      });
    } else if (match.kind === 'missing' && event.reversesEventId !== undefined) {
      refused.set(position, { index, code: 'event_already_reversed', path: `events.${index}.reverses`, message: `event ${event.reversesEventId} was reversed by another event meanwhile` });
    }
  });
  return refused;
}

async function creditEndedSubscriptions(deps: EventsRouterDependencies, customerIds: readonly string[]): Promise<void> {
  for (const { refund } of await creditReversalsOfEndedSubscriptions(deps.db, customerIds)) {
    // A refund the gateway does not confirm now stays pending on the credit note, as a refund request's does.
    if (refund && deps.gateway) await executeRefund(deps.db, deps.gateway, refund).catch(() => undefined);
  }
}

/**
 * Dimensional charges whose plan refuses usage no price matches (`unmatched: "reject"`): a lookup per event,
 * built with one query only when the batch touches a metric with group_by (ordinary batches pay nothing).
 */
async function unpricedUsageCheck(
  db: Database,
  metrics: Map<string, MetricRow[]>,
  customerIds: readonly string[],
  now: Date,
): Promise<(customerId: string, event: RawUsageEvent) => { detail: string } | undefined> {
  const dimensional = [...metrics.values()].flat().filter((metric) => metric.group_by?.length);
  if (dimensional.length === 0) return () => undefined;
  const charges = await rejectingDimensionalCharges(db, customerIds, new Set(dimensional.map((metric) => metric.code)), now);
  if (charges.size === 0) return () => undefined;
  const indexes = new Map();
  return (customerId, event) => {
    const byMetric = charges.get(customerId);
    if (!byMetric) return undefined;
    const pricing = (metrics.get(event.type) ?? [])
      .filter((metric) => byMetric.has(metric.code))
      .map((metric) => ({ metricCode: metric.code, filters: metric.filters ?? {}, charges: byMetric.get(metric.code)! }));
    const miss = unpricedByRejectingCharge(event.properties, pricing, indexes);
    return miss && { detail: `no price of metric ${miss.metricCode} matches ${miss.dimensionKey || 'an event without its dimensions'}, and the plan refuses unpriced usage` };
  };
}

/** Judges reversals against the events they name and the customer's dispute window; no queries without reversals. */
async function reversalCheck(
  db: Database,
  shaped: readonly { event: { reverses?: string } }[],
  customerIds: readonly string[],
): Promise<(customerId: string, occurredAt: Date, reversesEventId: string) => ReturnType<typeof judgeReversal>> {
  const named = shaped.flatMap(({ event }) => (event.reverses === undefined ? [] : [event.reverses]));
  if (named.length === 0) return () => ({ ok: true });
  const [targets, windows] = await Promise.all([reversalTargets(db, named), disputeWindows(db, customerIds)]);
  return (customerId, occurredAt, reversesEventId) =>
    judgeReversal({ customerId, occurredAt, reversesEventId }, targets.get(reversesEventId) ?? [], windows.get(customerId) ?? null);
}

/** Why a reversal that would add usage where a stop refuses it is refused, per the stop's code. */
const REVERSAL_REFUSALS: Record<UsageRefusal, string> = {
  usage_blocked: "reversing this event would add usage where the subscription is paused or suspended (at the reversed event's time; usage is refused then)",
  usage_cap_reached: "reversing this event would add spend past the plan's usage cap for its period",
};

/**
 * The positions of the reversals whose original, in open usage, brought a negative value to a corrections sum and is
 * stamped where a block or a spending cap refuses its type's usage, with that stop's code: taken back, that value
 * adds usage at the original's time, as an increase stamped there would, and such an increase is refused. Before,
 * reversals were never held to the cap: past a 50.00 cap, reversing a -10 correction billed 57.50 where +10 was
 * refused; nor to a block: a -10 correction stamped 4 minutes ahead, a pause begun in between, its reversal was
 * accepted and the paused period billed 12.50 where +10 stamped at the same instant was refused (10.00). Only
 * customers under a stop pay the read of the originals.
 */
async function reversalsRefusedByStops(
  deps: EventsRouterDependencies,
  reversals: readonly NewReversalEvent[],
  stops: ReadonlyMap<string, readonly UsageStop[]>,
  priced: ReadonlyMap<string, readonly SubscriptionPricedStretch[]>,
): Promise<Map<number, UsageRefusal>> {
  const refused = new Map<number, UsageRefusal>();
  const stopped = reversals.filter((reversal) => (stops.get(reversal.customerId) ?? []).length > 0);
  if (stopped.length === 0) return refused;
  const originals = await openOriginalsOf(deps.db, stopped);
  if (originals.size === 0) return refused;
  const metrics = await deps.metrics.metricsFor(new Set([...originals.values()].map((original) => original.eventType)));
  reversals.forEach((reversal, position) => {
    const original = originals.get(`${reversal.customerId}|${reversal.reversesEventId}`);
    if (!original) return;
    const stop = usageStopAt(stops.get(reversal.customerId), original.occurredAt, original.eventType, priced.get(reversal.customerId));
    if (stop && lowersSomeUsage({ type: original.eventType, properties: original.properties }, metrics)) refused.set(position, stop.refusal);
  });
  return refused;
}

/** Whether some corrections sum (`allow_negative`) reading the event took a negative value from it. */
function lowersSomeUsage(event: Pick<RawUsageEvent, 'type' | 'properties'>, metrics: Map<string, MetricRow[]>): boolean {
  return metricsReading(event, metrics).some((metric) => bringsNegativeValue(metric, event.properties));
}

/**
 * Whether every metric that reads the event is a corrections sum (`allow_negative`) to which it brings a negative
 * value: storing it can only lower the usage, so the spend, whatever the prices.
 */
function onlyLowersUsage(event: RawUsageEvent, metrics: Map<string, MetricRow[]>): boolean {
  const reading = metricsReading(event, metrics);
  return reading.length > 0 && reading.every((metric) => bringsNegativeValue(metric, event.properties));
}

/** The metrics that read the event: of its type, their filters matching its properties. */
function metricsReading(event: Pick<RawUsageEvent, 'type' | 'properties'>, metrics: Map<string, MetricRow[]>): MetricRow[] {
  return (metrics.get(event.type) ?? []).filter((metric) => Object.entries(metric.filters ?? {}).every(([key, expected]) => event.properties[key] === expected));
}

/** Whether the metric is a corrections sum (`allow_negative`) to which these properties bring a negative value. */
function bringsNegativeValue(metric: MetricRow, properties: RawUsageEvent['properties']): boolean {
  if (metric.aggregation !== 'sum' || !metric.allow_negative || metric.property === null) return false;
  const value = properties[metric.property];
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value : undefined;
  return text !== undefined && isDecimalString(text) && toDecimal(text).lt(0);
}

function toRequirements(metrics: Map<string, MetricRow[]>) {
  const requirements = new Map<string, MetricRequirement[]>();
  for (const [type, rows] of metrics) {
    requirements.set(
      type,
      rows.map((row) => ({
        code: row.code,
        property: row.property,
        numeric: readsNumericProperty(row),
        allowNegative: row.allow_negative === true,
        filters: row.filters ?? {},
        // What the running totals index for the event (store/rollups.ts): bounded at validation (indexed_value_too_long).
        groupBy: row.group_by ?? [],
        countsDistinct: row.aggregation === 'unique_count',
      })),
    );
  }
  return requirements;
}

/** After commit, tell the coalescer how many new events each customer got (it signals workflows in summary). */
function reportToWorkflows(
  coalescer: UsageSignalCoalescer | undefined,
  valid: readonly NewUsageEvent[],
  inserted: readonly { customer_id: string; event_id: string }[],
): void {
  if (!coalescer || inserted.length === 0) return;
  const latestByCustomer = new Map<string, Date>();
  for (const event of valid) {
    const latest = latestByCustomer.get(event.customerId);
    if (!latest || event.occurredAt > latest) latestByCustomer.set(event.customerId, event.occurredAt);
  }
  const countByCustomer = new Map<string, number>();
  for (const row of inserted) countByCustomer.set(row.customer_id, (countByCustomer.get(row.customer_id) ?? 0) + 1);
  for (const [customerId, count] of countByCustomer) coalescer.record(customerId, count, latestByCustomer.get(customerId)!);
}
