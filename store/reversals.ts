/**
 * Reversal events (docs/pricing.md, domain/reversals.ts): what ingestion reads to judge them, and the insert that
 * stores a reversal and marks its original in one statement, so the two never disagree.
 */
import type { Knex } from 'knex';
import type { ReversalTarget } from '../domain/reversals';
import { forgetRollupsOfReversed } from './rollups';
import { usageEndSql, type NewUsageEvent } from './usage';

/**
 * For an event already claimed by a usage close (invoiced): the first metric of that closure's plan that reads it
 * with an aggregation a credit cannot take one event out of (max, latest, unique_count: the close kept the level or
 * the count, not which event made it; prorated_sum, prorated_latest: seats, priced on a level over time, and that
 * level carried into every later period by the close). Null when every metric reading it is a count or a sum.
 * Before seats were listed, an invoiced seat change's reversal was accepted: the invoiced period got no credit and
 * every later period went on billing the reversed seat from the carried level.
 *
 * A seat change not claimed (late: stored after its period closed) is invoiced too once a later period's close read
 * it into its opening level (store/seat-usage.ts: every close reads the unclaimed changes before its start): its
 * reversal was accepted, that period kept billing the seat and no credit came.
 */
const uncreditableMetricSql = (closures: string, aggregations: string) => `(SELECT m.code FROM usage_period_closures c
  JOIN plans p ON p.id = c.plan_id
  CROSS JOIN LATERAL jsonb_array_elements(p.charges) AS ch(value)
  JOIN billable_metrics m ON m.code = ch.value ->> 'metricCode'
  WHERE ${closures} AND m.event_type = u.event_type AND m.aggregation IN (${aggregations})
    AND u.properties @> coalesce(m.filters, '{}'::jsonb)
  ORDER BY m.code LIMIT 1)`;
// Two lookups, each through its own index (the closure's key; the customer's closures): not one OR of both.
const UNCREDITABLE_METRIC_SQL = `coalesce(
  ${uncreditableMetricSql('c.id = u.period_close_id', "'max', 'latest', 'unique_count', 'prorated_sum', 'prorated_latest'")},
  ${uncreditableMetricSql('u.period_close_id IS NULL AND c.customer_id = u.customer_id AND c.period_start > u.occurred_at', "'prorated_sum', 'prorated_latest'")})`;

/**
 * The plan that bills the event `u` and its dispute window, as `{"window": ...}` (null: no plan prices it): the plan
 * its usage close billed it at, else the plan of the customer's subscription that prices its type at its time (at most
 * one does at an instant; docs/api.md). Judged by the customer's newest plan instead, a customer with two
 * subscriptions, or a new one after the first ended, was refused reversals their plan granted, or credited outcomes
 * sold without a dispute window.
 */
const BILLING_PLAN_WINDOW_SQL = `(SELECT jsonb_build_object('window', bp.settings ->> 'disputeWindow') FROM plans bp
  WHERE bp.id = coalesce(
    (SELECT c.plan_id FROM usage_period_closures c WHERE c.id = u.period_close_id),
    (SELECT s.plan_id FROM subscriptions s JOIN plans sp ON sp.id = s.plan_id
      WHERE s.customer_id = u.customer_id AND s.start_at <= u.occurred_at AND coalesce(${usageEndSql('s')} > u.occurred_at, true)
        AND EXISTS (SELECT 1 FROM jsonb_array_elements(sp.charges) AS ch(value)
                    JOIN billable_metrics m ON m.code = ch.value ->> 'metricCode' WHERE m.event_type = u.event_type)
      ORDER BY s.created_at DESC LIMIT 1)))`;

/** event id -> every stored event with that id (any customer), as a reversal judges it. */
export async function reversalTargets(db: Knex | Knex.Transaction, eventIds: readonly string[]): Promise<Map<string, ReversalTarget[]>> {
  const result = new Map<string, ReversalTarget[]>();
  if (eventIds.length === 0) return result;
  const rows: {
    event_id: string;
    customer_id: string;
    occurred_at: Date;
    reversed_by_event_id: string | null;
    reverses_event_id: string | null;
    uncreditable_metric: string | null;
    billing_plan: { window: string | null } | null;
  }[] = await db('usage_events as u')
    .whereIn('u.event_id', [...new Set(eventIds)])
    .select('u.event_id', 'u.customer_id', 'u.occurred_at', 'u.reversed_by_event_id', 'u.reverses_event_id', db.raw(`${UNCREDITABLE_METRIC_SQL} AS uncreditable_metric`), db.raw(`${BILLING_PLAN_WINDOW_SQL} AS billing_plan`));
  for (const row of rows) {
    const target: ReversalTarget = {
      customerId: row.customer_id,
      occurredAt: row.occurred_at,
      reversed: row.reversed_by_event_id !== null,
      isReversal: row.reverses_event_id !== null,
      ...(row.uncreditable_metric === null ? {} : { invoicedUnder: { metricCode: row.uncreditable_metric } }),
      ...(row.billing_plan === null ? {} : { disputeWindow: row.billing_plan.window }),
    };
    result.set(row.event_id, [...(result.get(row.event_id) ?? []), target]);
  }
  return result;
}

/**
 * customer id -> the dispute window of the plan of their newest subscription that is not canceled (null: none): what
 * judges a reversal of an original no plan prices (the others carry their billing plan's window: reversalTargets).
 */
export async function disputeWindows(db: Knex | Knex.Transaction, customerIds: readonly string[]): Promise<Map<string, string | null>> {
  if (customerIds.length === 0) return new Map();
  const rows: { customer_id: string; dispute_window: string | null }[] = await db('subscriptions as s')
    .join('plans as p', 'p.id', 's.plan_id')
    .whereIn('s.customer_id', [...new Set(customerIds)])
    // The newest live subscription decides; a customer whose subscriptions all ended keeps the newest one's window
    // (its reversals become credit notes: store/reversal-credit-notes.ts). Later rows win in the map below.
    .orderByRaw("(s.status = 'canceled') DESC, s.created_at ASC")
    .select('s.customer_id', db.raw("p.settings ->> 'disputeWindow' AS dispute_window"));
  return new Map(rows.map((row) => [row.customer_id, row.dispute_window]));
}

export type NewReversalEvent = NewUsageEvent & { readonly reversesEventId: string };

/** The originals of these reversals still in open usage (not claimed by a close), keyed `<customer id>|<event id>`. */
export async function openOriginalsOf(db: Knex | Knex.Transaction, reversals: readonly Pick<NewReversalEvent, 'customerId' | 'reversesEventId'>[]): Promise<Map<string, NewUsageEvent>> {
  if (reversals.length === 0) return new Map();
  const rows: { customer_id: string; event_id: string; event_type: string; occurred_at: Date; properties: Record<string, unknown> }[] = await db('usage_events')
    .whereIn(['customer_id', 'event_id'], reversals.map((reversal) => [reversal.customerId, reversal.reversesEventId]))
    .whereNull('period_close_id')
    .whereNull('reversed_by_event_id')
    .whereNull('reverses_event_id')
    .select('customer_id', 'event_id', 'event_type', 'occurred_at', 'properties');
  return new Map(rows.map((row) => [`${row.customer_id}|${row.event_id}`, { customerId: row.customer_id, eventId: row.event_id, eventType: row.event_type, occurredAt: row.occurred_at, properties: row.properties }]));
}

/**
 * Stores reversals and marks their originals in one statement. A resent reversal (same event id) or a second
 * reversal of one original is skipped by the unique indexes; only the reversals stored mark their originals.
 */
export async function insertReversalEvents(db: Knex, events: readonly NewReversalEvent[]): Promise<{ customer_id: string; event_id: string }[]> {
  if (events.length === 0) return [];
  return db.transaction((trx) => insertReversalEventsIn(trx, events));
}

/** insertReversalEvents in the caller's transaction (store/entitlements.ts judges hard limits in it first). */
export async function insertReversalEventsIn(trx: Knex.Transaction, events: readonly NewReversalEvent[]): Promise<{ customer_id: string; event_id: string }[]> {
  if (events.length === 0) return [];
  // The running totals (store/rollups.ts) still hold what is reversed now: their windows are seeded again.
  const originals: { customer_id: string; occurred_at: Date }[] = await trx('usage_events')
    .whereIn(['customer_id', 'event_id'], events.map((event) => [event.customerId, event.reversesEventId]))
    .select('customer_id', 'occurred_at');
  await forgetRollupsOfReversed(trx, originals.map((row) => ({ customerId: row.customer_id, occurredAt: row.occurred_at })));
  const stored = (await insertAndMark(trx, events)).rows;
  // A reversal is credited when it was received after the close that claimed (and so billed) its original
  // (received_at > closed_at). received_at is this transaction's start, and a close may have begun after it, claimed
  // and counted the original and committed while this transaction waited for the original's row (or the customer's
  // rollup lock): the original was billed and the reversal never credited. An original found claimed when it is
  // marked was counted by a close that committed before, so the reversal is received now, after that close.
  const afterClaim = stored.filter((row) => row.original_claimed);
  if (afterClaim.length) {
    await trx('usage_events')
      .whereIn(['customer_id', 'event_id'], afterClaim.map((row) => [row.customer_id, row.event_id]))
      .whereNotNull('reverses_event_id')
      .update({ received_at: trx.raw('clock_timestamp()') });
  }
  return stored.map(({ customer_id, event_id }) => ({ customer_id, event_id }));
}

function insertAndMark(db: Knex.Transaction, events: readonly NewReversalEvent[]) {
  return db.raw<{ rows: { customer_id: string; event_id: string; original_claimed: boolean }[] }>(
    `WITH inserted AS (
       INSERT INTO usage_events (customer_id, event_id, event_type, occurred_at, properties, reverses_event_id, late)
       SELECT e.customer_id, e.event_id, e.event_type, e.occurred_at, e.properties, e.reverses_event_id, false
       FROM unnest(?::uuid[], ?::text[], ?::text[], ?::timestamptz[], ?::jsonb[], ?::text[])
            AS e(customer_id, event_id, event_type, occurred_at, properties, reverses_event_id)
       ON CONFLICT DO NOTHING
       RETURNING customer_id, event_id, reverses_event_id
     ), marked AS (
       UPDATE usage_events o SET reversed_by_event_id = i.event_id
       FROM inserted i
       WHERE o.customer_id = i.customer_id AND o.event_id = i.reverses_event_id AND o.reversed_by_event_id IS NULL
       RETURNING o.customer_id, o.reversed_by_event_id, o.period_close_id
     )
     SELECT i.customer_id, i.event_id, coalesce(m.period_close_id IS NOT NULL, false) AS original_claimed
     FROM inserted i LEFT JOIN marked m ON m.customer_id = i.customer_id AND m.reversed_by_event_id = i.event_id`,
    [
      events.map((event) => event.customerId),
      events.map((event) => event.eventId),
      events.map((event) => event.eventType),
      events.map((event) => event.occurredAt.toISOString()),
      events.map((event) => JSON.stringify(event.properties)),
      events.map((event) => event.reversesEventId),
    ],
  );
}

/** A reversal whose original had already been closed (and so invoiced) when the reversal arrived. */
export interface InvoicedReversal {
  readonly reversalRowId: string;
  readonly credited: boolean;
  readonly eventType: string;
  readonly properties: Record<string, unknown>;
  /** The original outcome's timestamp (which cost table costed it). */
  readonly occurredAt: Date;
  readonly closeId: string;
  readonly periodStart: Date;
  readonly periodEnd: Date;
  readonly planId: string | null;
  readonly totals: Record<string, unknown>;
}

/**
 * Every reversal of an outcome closed in one of this subscription's periods before the reversal arrived, for the
 * closures that still have one to credit. Locks the reversals, so two invoices cannot credit one twice; the usage
 * preview reads them without a lock (`lock: false`), as it writes nothing.
 */
export async function invoicedReversals(trx: Knex | Knex.Transaction, subscriptionId: string, customerId: string, { lock = true } = {}): Promise<InvoicedReversal[]> {
  const result = await trx.raw<{ rows: (Omit<InvoicedReversal, 'reversalRowId' | 'closeId'> & { reversalRowId: string; closeId: string })[] }>(
    `SELECT r.id::text AS "reversalRowId", r.reversal_credited_on IS NOT NULL AS credited, o.event_type AS "eventType", o.properties, o.occurred_at AS "occurredAt",
            c.id::text AS "closeId", c.period_start AS "periodStart", c.period_end AS "periodEnd", c.plan_id AS "planId", c.totals
     FROM usage_events r
     JOIN usage_events o ON o.customer_id = r.customer_id AND o.event_id = r.reverses_event_id
     JOIN usage_period_closures c ON c.id = o.period_close_id
     WHERE r.customer_id = ? AND r.reverses_event_id IS NOT NULL AND c.subscription_id = ? AND r.received_at > c.closed_at -- (the partial index of reversals)
       AND EXISTS (SELECT 1 FROM usage_events r2 JOIN usage_events o2 ON o2.customer_id = r2.customer_id AND o2.event_id = r2.reverses_event_id
                   WHERE r2.customer_id = r.customer_id AND o2.period_close_id = c.id AND r2.reversal_credited_on IS NULL AND r2.received_at > c.closed_at)
     ORDER BY c.period_start, r.id
     ${lock ? 'FOR UPDATE OF r' : ''}`,
    [customerId, subscriptionId],
  );
  return result.rows;
}

/** Every reversal of an outcome of this closure that arrived after the close, credited or not (a read: no lock). */
export async function reversalsOfClosure(db: Knex | Knex.Transaction, closeId: string): Promise<InvoicedReversal[]> {
  const result = await db.raw<{ rows: InvoicedReversal[] }>(
    `SELECT r.id::text AS "reversalRowId", r.reversal_credited_on IS NOT NULL AS credited, o.event_type AS "eventType", o.properties, o.occurred_at AS "occurredAt",
            c.id::text AS "closeId", c.period_start AS "periodStart", c.period_end AS "periodEnd", c.plan_id AS "planId", c.totals
     FROM usage_period_closures c
     JOIN usage_events r ON r.customer_id = c.customer_id AND r.reverses_event_id IS NOT NULL
     JOIN usage_events o ON o.customer_id = r.customer_id AND o.event_id = r.reverses_event_id AND o.period_close_id = c.id
     WHERE c.id = ? AND r.received_at > c.closed_at
     ORDER BY r.id`,
    [closeId],
  );
  return result.rows;
}

export async function markReversalsCredited(trx: Knex.Transaction, reversalRowIds: readonly string[], creditedOn: string): Promise<void> {
  if (reversalRowIds.length === 0) return;
  await trx('usage_events').whereIn('id', [...reversalRowIds]).whereNull('reversal_credited_on').update({ reversal_credited_on: creditedOn });
}
