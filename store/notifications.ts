/**
 * The delivery side of the transactional outbox: webhook endpoints, webhook deliveries (with their attempt log)
 * and email deliveries. Every claim uses FOR UPDATE SKIP LOCKED, so any number of dispatchers can run at once
 * without two of them taking the same row.
 */
import type { Knex } from 'knex';
import { randomBytes } from 'node:crypto';

type Db = Knex | Knex.Transaction;

export interface WebhookEndpointRow {
  id: string;
  url: string;
  secret: string;
  event_types: string[];
  enabled: boolean;
  description: string | null;
  created_at: Date;
}

export interface OutboxRow {
  id: string; // BIGINT, kept as a string
  event_type: string;
  aggregate_type: string;
  aggregate_id: string;
  dedupe_key: string;
  payload: Record<string, unknown>;
  created_at: Date;
  dispatched_at: Date | null;
}

export interface WebhookDeliveryRow {
  id: string;
  outbox_id: string;
  endpoint_id: string;
  event_type: string;
  status: 'pending' | 'delivered' | 'failed';
  attempt: number;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: Date | null;
  delivered_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface WebhookDeliveryAttemptRow {
  id: string;
  delivery_id: string;
  attempt: number;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
  next_attempt_at: Date | null;
  attempted_at: Date;
}

export interface EmailDeliveryRow {
  id: string;
  outbox_id: string;
  event_type: string;
  recipient: string;
  subject: string;
  body: string;
  status: 'pending' | 'delivered' | 'failed';
  attempt: number;
  last_error: string | null;
  next_attempt_at: Date | null;
  delivered_at: Date | null;
  created_at: Date;
}

// --- Endpoints ---

/** A new endpoint secret: `whsec_` + 32 random bytes, base64url. The HMAC key is this whole string. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

export interface NewWebhookEndpoint {
  readonly url: string;
  readonly secret: string;
  readonly eventTypes: readonly string[];
  readonly enabled: boolean;
  readonly description: string | null;
}

export async function createWebhookEndpoint(db: Db, endpoint: NewWebhookEndpoint): Promise<WebhookEndpointRow> {
  const [row] = await db<WebhookEndpointRow>('webhook_endpoints')
    .insert({
      url: endpoint.url,
      secret: endpoint.secret,
      event_types: [...endpoint.eventTypes],
      enabled: endpoint.enabled,
      description: endpoint.description,
    })
    .returning('*');
  return row;
}

export async function listWebhookEndpoints(db: Db): Promise<WebhookEndpointRow[]> {
  return db<WebhookEndpointRow>('webhook_endpoints').orderBy('created_at');
}

export async function findWebhookEndpoint(db: Db, id: string): Promise<WebhookEndpointRow | undefined> {
  return db<WebhookEndpointRow>('webhook_endpoints').where({ id }).first();
}

/** `*` matches every type, `payment.*` every type under `payment.`, anything else matches exactly. */
export function eventTypeMatches(patterns: readonly string[], eventType: string): boolean {
  return patterns.some(
    (pattern) => pattern === '*' || pattern === eventType || (pattern.endsWith('.*') && eventType.startsWith(pattern.slice(0, -1))),
  );
}

// --- Fan-out: outbox -> deliveries ---

/** Undispatched events, oldest first, locked for this transaction; rows another dispatcher holds are skipped. */
export async function claimUndispatchedEvents(trx: Knex.Transaction, limit: number): Promise<OutboxRow[]> {
  return trx<OutboxRow>('outbox').whereNull('dispatched_at').orderBy('id').limit(limit).forUpdate().skipLocked();
}

export async function markEventsDispatched(trx: Knex.Transaction, ids: readonly string[]): Promise<void> {
  if (ids.length) await trx('outbox').whereIn('id', ids).update({ dispatched_at: trx.fn.now() });
}

export async function enabledWebhookEndpoints(db: Db): Promise<WebhookEndpointRow[]> {
  return db<WebhookEndpointRow>('webhook_endpoints').where({ enabled: true });
}

export async function insertWebhookDeliveries(
  trx: Knex.Transaction,
  deliveries: ReadonlyArray<{ outboxId: string; endpointId: string; eventType: string }>,
): Promise<void> {
  if (!deliveries.length) return;
  await trx('webhook_deliveries')
    .insert(
      deliveries.map((delivery) => ({
        outbox_id: delivery.outboxId,
        endpoint_id: delivery.endpointId,
        event_type: delivery.eventType,
        status: 'pending',
        next_attempt_at: trx.fn.now(),
      })),
    )
    .onConflict(['outbox_id', 'endpoint_id'])
    .ignore();
}

export async function insertEmailDeliveries(
  trx: Knex.Transaction,
  emails: ReadonlyArray<{ outboxId: string; eventType: string; recipient: string; subject: string; body: string }>,
): Promise<void> {
  if (!emails.length) return;
  await trx('email_deliveries')
    .insert(
      emails.map((email) => ({
        outbox_id: email.outboxId,
        event_type: email.eventType,
        recipient: email.recipient,
        subject: email.subject,
        body: email.body,
        status: 'pending',
        next_attempt_at: trx.fn.now(),
      })),
    )
    .onConflict(['outbox_id', 'recipient'])
    .ignore();
}

/** What an email about an event needs to read well: who it goes to, and the invoice or plan it is about. */
export interface EmailContext {
  readonly customer: { readonly id: string; readonly name: string; readonly email: string | null };
  readonly invoice: {
    readonly id: string;
    readonly number: string | null;
    readonly total: string;
    readonly currency: string;
    readonly periodStart: Date;
    readonly periodEnd: Date;
  } | null;
  readonly planName: string | null;
}

const asString = (value: unknown): string | null => (typeof value === 'string' && value ? value : null);

export async function loadEmailContext(db: Db, event: OutboxRow): Promise<EmailContext | null> {
  const payload = event.payload ?? {};
  const invoiceId = asString(payload.invoiceId) ?? (event.aggregate_type === 'invoice' ? event.aggregate_id : null);
  const subscriptionIdFromEvent = asString(payload.subscriptionId) ?? (event.aggregate_type === 'subscription' ? event.aggregate_id : null);
  const invoice = invoiceId
    ? await db('invoices').where({ id: invoiceId }).first('id', 'number', 'total', 'currency', 'period_start', 'period_end', 'customer_id', 'subscription_id')
    : undefined;
  const subscriptionId = subscriptionIdFromEvent ?? invoice?.subscription_id ?? null;
  const subscription = subscriptionId ? await db('subscriptions').where({ id: subscriptionId }).first('customer_id', 'plan_id') : undefined;
  const customerId = asString(payload.customerId) ?? invoice?.customer_id ?? subscription?.customer_id ?? (event.aggregate_type === 'customer' ? event.aggregate_id : null);
  if (!customerId) return null;
  const customer = await db('customers').where({ id: customerId }).first('id', 'name', 'email');
  if (!customer) return null;
  const plan = subscription ? await db('plans').where({ id: subscription.plan_id }).first('name') : undefined;
  return {
    customer: { id: customer.id, name: customer.name, email: customer.email },
    invoice: invoice
      ? { id: invoice.id, number: invoice.number, total: invoice.total, currency: invoice.currency, periodStart: invoice.period_start, periodEnd: invoice.period_end }
      : null,
    planName: plan?.name ?? null,
  };
}

export type NewWebhookDelivery = Parameters<typeof insertWebhookDeliveries>[1][number];
export type NewEmailDelivery = Parameters<typeof insertEmailDeliveries>[1][number];

/** A claimed batch of events, as the fan-out planner sees it; everything it reads is read in the claim's transaction. */
export interface FanOutBatch {
  readonly events: readonly OutboxRow[];
  readonly endpoints: readonly WebhookEndpointRow[];
  emailContext(event: OutboxRow): Promise<EmailContext | null>;
}

export interface PlannedDeliveries {
  readonly webhooks: readonly NewWebhookDelivery[];
  readonly emails: readonly NewEmailDelivery[];
}

/**
 * Fan-out in one transaction: claims up to `limit` undispatched events, asks `plan` which deliveries they become,
 * writes those and marks the events dispatched. Returns how many events it took (0: nothing to do).
 */
export async function fanOutUndispatchedEvents(
  db: Knex,
  limit: number,
  plan: (batch: FanOutBatch) => Promise<PlannedDeliveries>,
): Promise<number> {
  return db.transaction(async (trx) => {
    const events = await claimUndispatchedEvents(trx, limit);
    if (!events.length) return 0;
    const endpoints = await enabledWebhookEndpoints(trx);
    const planned = await plan({ events, endpoints, emailContext: (event) => loadEmailContext(trx, event) });
    await insertWebhookDeliveries(trx, planned.webhooks);
    await insertEmailDeliveries(trx, planned.emails);
    await markEventsDispatched(trx, events.map((event) => event.id));
    return events.length;
  });
}

// --- Delivery: claims with a lease, results with the next try ---

export interface ClaimedWebhookDelivery {
  readonly delivery: WebhookDeliveryRow;
  readonly endpoint: WebhookEndpointRow;
  readonly event: OutboxRow;
}

/** `now() + ms`, computed by Postgres so every dispatcher shares one clock. */
function millisecondsFromNow(db: Db, ms: number): Knex.Raw {
  return db.raw(`now() + ? * interval '1 millisecond'`, [ms]);
}

/**
 * The two delivery tables share the claim; only webhook deliveries carry an updated_at column, and only they are
 * taken in turns per destination (`fairBy`).
 */
const DELIVERY_TABLES = {
  webhook_deliveries: { touchesUpdatedAt: true, fairBy: 'endpoint_id' },
  email_deliveries: { touchesUpdatedAt: false, fairBy: null },
} as const;

/**
 * Claims due deliveries: each claimed row's attempt is incremented and its next_attempt_at pushed a lease ahead,
 * so a dispatcher that dies mid-request leaves a row that becomes due again when the lease ends (at-least-once;
 * receivers dedupe on the event id).
 *
 * Webhooks are taken in turns per endpoint: every endpoint's oldest due delivery before any endpoint's second one.
 * Strictly oldest first, a burst of events for one endpoint that hangs (each request lasting the full timeout)
 * filled every batch, and every other endpoint's webhooks waited behind all of it, pass after pass.
 */
async function claimDueDeliveries<Row>(db: Knex, table: keyof typeof DELIVERY_TABLES, limit: number, leaseMs: number): Promise<Row[]> {
  const { fairBy, touchesUpdatedAt } = DELIVERY_TABLES[table];
  return db.transaction(async (trx) => {
    const dueNow = (query: Knex.QueryBuilder): Knex.QueryBuilder => query.where({ status: 'pending' }).where('next_attempt_at', '<=', trx.fn.now());
    // The turn order is read without locks (window functions cannot take row locks); the claim below locks and
    // re-checks each row (a row another dispatcher claimed meanwhile is no longer due, or is skipped while locked).
    const candidates = fairBy
      ? trx
          .from(
            dueNow(trx(table))
              .select('id', 'next_attempt_at', trx.raw('row_number() OVER (PARTITION BY ?? ORDER BY next_attempt_at, id) AS turn', [fairBy]))
              .as('ranked'),
          )
          .orderBy([{ column: 'turn' }, { column: 'next_attempt_at' }, { column: 'id' }])
          .limit(limit)
          .select('id')
      : null;
    const due: Array<{ id: string }> = await (candidates ? dueNow(trx(table)).whereIn('id', candidates) : dueNow(trx(table)))
      .orderBy([{ column: 'next_attempt_at' }, { column: 'id' }])
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .select('id');
    if (!due.length) return [];
    return trx(table)
      .whereIn('id', due.map((row) => row.id))
      .update({
        attempt: trx.raw('attempt + 1'),
        next_attempt_at: millisecondsFromNow(trx, leaseMs),
        ...(touchesUpdatedAt ? { updated_at: trx.fn.now() } : {}),
      })
      .returning('*');
  });
}

/** Claims due webhook deliveries (see claimDueDeliveries) with the endpoint and event each one sends. */
export async function claimDueWebhookDeliveries(db: Knex, limit: number, leaseMs: number): Promise<ClaimedWebhookDelivery[]> {
  const claimed = await claimDueDeliveries<WebhookDeliveryRow>(db, 'webhook_deliveries', limit, leaseMs);
  if (!claimed.length) return [];
  const [endpoints, events] = await Promise.all([
    db<WebhookEndpointRow>('webhook_endpoints').whereIn('id', [...new Set(claimed.map((row) => row.endpoint_id))]),
    db<OutboxRow>('outbox').whereIn('id', claimed.map((row) => row.outbox_id)),
  ]);
  return claimed.map((delivery) => ({
    delivery,
    endpoint: endpoints.find((endpoint) => endpoint.id === delivery.endpoint_id)!,
    event: events.find((event) => String(event.id) === String(delivery.outbox_id))!,
  }));
}

export interface WebhookAttemptResult {
  readonly deliveryId: string;
  readonly attempt: number;
  readonly statusCode: number | null;
  readonly error: string | null;
  readonly durationMs: number;
  /** delivered, or retry after `retryInMs`, or failed for good (the last attempt, or the endpoint is gone). */
  readonly outcome: 'delivered' | 'retry' | 'failed';
  readonly retryInMs?: number;
}

/**
 * Text a receiver or sink wrote (an error answer's body, an exception's message) made storable: Postgres text
 * cannot hold U+0000, and an attempt that cannot be recorded stays pending under its lease, so it was re-sent
 * every lease forever, past maxAttempts and absent from the delivery log.
 */
function storableError(error: string | null): string | null {
  return error === null ? null : error.replaceAll(String.fromCharCode(0), '\uFFFD');
}

/** Logs one try and moves the delivery on. Only the claimant of this attempt may move it (a late answer after its lease ended is logged, not applied). */
export async function recordWebhookAttempt(db: Knex, result: WebhookAttemptResult): Promise<void> {
  await db.transaction(async (trx) => {
    const nextAttemptAt =
      result.outcome === 'retry' ? millisecondsFromNow(trx, result.retryInMs ?? 0) : null;
    await trx('webhook_delivery_attempts')
      .insert({
        delivery_id: result.deliveryId,
        attempt: result.attempt,
        status_code: result.statusCode,
        error: storableError(result.error),
        duration_ms: result.durationMs,
        next_attempt_at: nextAttemptAt,
      })
      .onConflict(['delivery_id', 'attempt'])
      .ignore();
    await trx('webhook_deliveries')
      .where({ id: result.deliveryId, attempt: result.attempt, status: 'pending' })
      .update({
        status: result.outcome === 'retry' ? 'pending' : result.outcome,
        last_status_code: result.statusCode,
        last_error: storableError(result.error),
        next_attempt_at: nextAttemptAt,
        delivered_at: result.outcome === 'delivered' ? trx.fn.now() : null,
        updated_at: trx.fn.now(),
      });
  });
}

/** Claims due email deliveries (see claimDueDeliveries). */
export async function claimDueEmailDeliveries(db: Knex, limit: number, leaseMs: number): Promise<EmailDeliveryRow[]> {
  return claimDueDeliveries<EmailDeliveryRow>(db, 'email_deliveries', limit, leaseMs);
}

export async function recordEmailAttempt(
  db: Knex,
  result: { deliveryId: string; attempt: number; error: string | null; outcome: 'delivered' | 'retry' | 'failed'; retryInMs?: number },
): Promise<void> {
  await db('email_deliveries')
    .where({ id: result.deliveryId, attempt: result.attempt, status: 'pending' })
    .update({
      status: result.outcome === 'retry' ? 'pending' : result.outcome,
      last_error: storableError(result.error),
      next_attempt_at: result.outcome === 'retry' ? millisecondsFromNow(db, result.retryInMs ?? 0) : null,
      delivered_at: result.outcome === 'delivered' ? db.fn.now() : null,
    });
}

export async function listWebhookDeliveries(db: Db, filter: { endpointId?: string; outboxId?: string } = {}): Promise<WebhookDeliveryRow[]> {
  const conditions: Partial<WebhookDeliveryRow> = {};
  if (filter.endpointId) conditions.endpoint_id = filter.endpointId;
  if (filter.outboxId) conditions.outbox_id = filter.outboxId;
  return db<WebhookDeliveryRow>('webhook_deliveries').where(conditions).orderBy('id');
}

export async function listWebhookDeliveryAttempts(db: Db, deliveryId: string): Promise<WebhookDeliveryAttemptRow[]> {
  return db<WebhookDeliveryAttemptRow>('webhook_delivery_attempts').where({ delivery_id: deliveryId }).orderBy('attempt');
}
