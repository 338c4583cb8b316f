/**
 * The delivery side of the transactional outbox:
 *
 *   outbox (written with each change) --fan-out--> webhook_deliveries (one per matching endpoint)
 *                                             \--> email_deliveries   (one per event with a customer email)
 *   due deliveries --HTTP POST, signed--> endpoints;  --EmailSink--> file folder / log
 *
 * A plain loop in the worker process (`startOutboxDispatcher`), not a Temporal activity: it needs no durable
 * timers of its own (retry times are rows in Postgres), and every claim uses FOR UPDATE SKIP LOCKED, so several
 * worker processes can run it side by side. Delivery is at-least-once: receivers dedupe on the event id
 * (`Meterloop-Event-Id`).
 */
import type { Database } from '../store/database';
import {
  ClaimedWebhookDelivery,
  claimDueEmailDeliveries,
  claimDueWebhookDeliveries,
  EmailDeliveryRow,
  eventTypeMatches,
  fanOutUndispatchedEvents,
  FanOutBatch,
  NewEmailDelivery,
  OutboxRow,
  PlannedDeliveries,
  recordEmailAttempt,
  recordWebhookAttempt,
} from '../store/notifications';
import {
  attemptOutcome,
  claimLeaseMs,
  emailDeliveryPolicy,
  RetryPolicy,
  retryDelayMs,
  webhookDeliveryPolicy,
  WebhookDeliveryPolicy,
} from './delivery-policy';
import { EmailChannelOptions, emailMessageFor, OPERATOR_ONLY_EVENT_TYPES } from './email';
import { renderEmail } from './email-rendering';
import { jsonConsoleLogger, Logger } from './logger';
import { signWebhookPayload, WEBHOOK_SIGNATURE_HEADER } from './webhook-signature';

export interface OutboxDispatcherOptions {
  readonly db: Database;
  /** Rows per claim (outbox events, webhook deliveries, emails); default 100. */
  readonly batchSize?: number;
  /** Wait when a pass found nothing to do; default 1000 ms. */
  readonly pollIntervalMs?: number;
  readonly webhooks?: Partial<RetryPolicy> & { readonly timeoutMs?: number };
  /** Omit (or null) to send no email; events are still fanned out to webhooks. */
  readonly email?: EmailChannelOptions | null;
  /** Failed deliveries and failed passes; a pino logger fits. Default: JSON lines on stdout. */
  readonly logger?: Logger;
}

export interface DispatchPassResult {
  readonly eventsFannedOut: number;
  readonly webhookAttempts: number;
  readonly emailAttempts: number;
}

const DEFAULT_BATCH_SIZE = 100;

/** The JSON body of every webhook: the event envelope around the outbox payload. */
export function webhookBody(event: OutboxRow): string {
  return JSON.stringify({
    id: `evt_${event.id}`,
    type: event.event_type,
    created_at: new Date(event.created_at).toISOString(),
    data: event.payload,
  });
}

/** Which deliveries a claimed batch of events becomes: one per matching enabled endpoint, one mail per customer email. */
async function planDeliveries(batch: FanOutBatch, email: EmailChannelOptions | null | undefined): Promise<PlannedDeliveries> {
  const webhooks = batch.events.flatMap((event) =>
    batch.endpoints
      .filter((endpoint) => eventTypeMatches(endpoint.event_types, event.event_type))
      .map((endpoint) => ({ outboxId: event.id, endpointId: endpoint.id, eventType: event.event_type })),
  );
  const emails: NewEmailDelivery[] = [];
  if (email) {
    for (const event of batch.events) {
      if (!eventTypeMatches(email.eventTypes ?? ['*'], event.event_type)) continue;
      if (OPERATOR_ONLY_EVENT_TYPES.includes(event.event_type)) continue; // an alert for us, not news for the customer
      const context = await batch.emailContext(event);
      if (!context?.customer.email) continue;
      const rendered = renderEmail(event.event_type, event.payload ?? {}, context, email.brand);
      emails.push({ outboxId: event.id, eventType: event.event_type, recipient: context.customer.email, subject: rendered.subject, body: rendered.text });
    }
  }
  return { webhooks, emails };
}

/**
 * The endpoint URL as logged and recorded: without the user and password an endpoint stored earlier may carry in
 * it (the API now refuses such URLs: fetch will not send to them). The failed attempt's error quotes the URL, and
 * both went to the warning log and the delivery log (GET /v1/webhook-endpoints/:id/deliveries) as written.
 */
function withoutCredentials(url: string): { url: string; scrub: (text: string | null) => string | null } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { url, scrub: (text) => text };
  }
  if (!parsed.username && !parsed.password) return { url, scrub: (text) => text };
  const secrets = [parsed.password, safeDecode(parsed.password)].filter((part) => part.length > 0); // the user name is no secret
  parsed.username = '';
  parsed.password = '';
  const redacted = parsed.toString();
  const scrub = (text: string | null): string | null =>
    text === null ? null : secrets.reduce((scrubbed, secret) => scrubbed.split(secret).join('***'), text.split(url).join(redacted));
  return { url: redacted, scrub };
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** Sends one webhook; the answer is the HTTP status (if any) and the error that makes it a failure (null: delivered). */
async function postWebhook(claimed: ClaimedWebhookDelivery, policy: WebhookDeliveryPolicy): Promise<{ statusCode: number | null; error: string | null }> {
  const { delivery, endpoint, event } = claimed;
  const body = webhookBody(event);
  try {
    const response = await fetch(endpoint.url, {
      method: 'POST',
      redirect: 'manual', // a redirect is a failure, never a silent hop to another host
      signal: AbortSignal.timeout(policy.timeoutMs),
      headers: {
        'content-type': 'application/json',
        'user-agent': 'meterloop-webhooks/1',
        'meterloop-event-id': `evt_${event.id}`,
        'meterloop-event-type': event.event_type,
        'meterloop-delivery-attempt': String(delivery.attempt),
        [WEBHOOK_SIGNATURE_HEADER.toLowerCase()]: signWebhookPayload(endpoint.secret, body),
      },
      body,
    });
    const text = await response.text().catch(() => '');
    const failed = response.status < 200 || response.status >= 300;
    return { statusCode: response.status, error: failed ? `HTTP ${response.status}${text ? `: ${text.slice(0, 500)}` : ''}` : null };
  } catch (caught) {
    const failure = caught as Error;
    const error =
      failure.name === 'TimeoutError'
        ? `timeout after ${policy.timeoutMs} ms`
        : `${failure.message}${failure.cause ? `: ${String((failure.cause as Error).message ?? failure.cause)}` : ''}`;
    return { statusCode: null, error };
  }
}

async function deliverWebhook(options: OutboxDispatcherOptions, claimed: ClaimedWebhookDelivery): Promise<void> {
  const policy = webhookDeliveryPolicy(options.webhooks);
  const { delivery, endpoint } = claimed;
  const started = Date.now();
  // A disabled endpoint fails for good without a request: no retry would reach it.
  const sent = endpoint.enabled ? await postWebhook(claimed, policy) : { statusCode: null, error: 'endpoint disabled' };
  const shown = withoutCredentials(endpoint.url);
  const { statusCode } = sent;
  const error = shown.scrub(sent.error);
  const outcome = attemptOutcome(error === null, delivery.attempt, policy, endpoint.enabled);
  const retryInMs = outcome === 'retry' ? retryDelayMs(delivery.attempt, policy) : undefined;
  await recordWebhookAttempt(options.db, {
    deliveryId: delivery.id,
    attempt: delivery.attempt,
    statusCode,
    error,
    durationMs: Date.now() - started,
    outcome,
    retryInMs,
  });
  if (outcome !== 'delivered') {
    (options.logger ?? jsonConsoleLogger).warn(
      { deliveryId: delivery.id, url: shown.url, attempt: delivery.attempt, error, outcome, retryInMs },
      'webhook delivery failed',
    );
  }
}

async function deliverEmail(options: OutboxDispatcherOptions, email: EmailChannelOptions, row: EmailDeliveryRow): Promise<void> {
  const policy = emailDeliveryPolicy(email.retry);
  let error: string | null = null;
  try {
    await email.sink.send(emailMessageFor(row, email));
  } catch (caught) {
    error = (caught as Error).message ?? String(caught);
  }
  const outcome = attemptOutcome(error === null, row.attempt, policy);
  await recordEmailAttempt(options.db, {
    deliveryId: row.id,
    attempt: row.attempt,
    error,
    outcome,
    retryInMs: outcome === 'retry' ? retryDelayMs(row.attempt, policy) : undefined,
  });
  if (error) (options.logger ?? jsonConsoleLogger).warn({ deliveryId: row.id, attempt: row.attempt, error, outcome }, 'email delivery failed');
}

/** One pass: fan out a batch of new events, then try a batch of due webhooks and a batch of due emails. */
export async function dispatchOutboxOnce(options: OutboxDispatcherOptions): Promise<DispatchPassResult> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const leaseMs = claimLeaseMs(webhookDeliveryPolicy(options.webhooks));
  const eventsFannedOut = await fanOutUndispatchedEvents(options.db, batchSize, (batch) => planDeliveries(batch, options.email));
  const webhooks = await claimDueWebhookDeliveries(options.db, batchSize, leaseMs);
  const email = options.email;
  const emails = email ? await claimDueEmailDeliveries(options.db, batchSize, leaseMs) : [];
  await Promise.all([
    ...webhooks.map((claimed) => deliverWebhook(options, claimed)),
    ...emails.map((row) => deliverEmail(options, email!, row)),
  ]);
  return { eventsFannedOut, webhookAttempts: webhooks.length, emailAttempts: emails.length };
}

export interface OutboxDispatcher {
  /** Finishes the pass in progress (requests in flight are bounded by the webhook timeout), then stops. */
  stop(): Promise<void>;
}

/**
 * Runs passes back to back while there is work, and polls every `pollIntervalMs` when there is none.
 * A failing pass (Postgres restarting, say) is logged (once per outage) and retried after the poll interval; it
 * never stops the loop.
 */
export function startOutboxDispatcher(options: OutboxDispatcherOptions): OutboxDispatcher {
  const logger = options.logger ?? jsonConsoleLogger;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  let stopping = false;
  let wake: (() => void) | null = null;
  const idle = (): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        wake = null;
        resolve();
      }, pollIntervalMs);
      wake = () => {
        clearTimeout(timer);
        wake = null;
        resolve();
      };
    });

  // An outage (Postgres restarting) fails every pass until it ends: the first failure is logged, the rest counted.
  let failedPasses = 0;
  const loop = (async () => {
    while (!stopping) {
      let busy = false;
      try {
        const pass = await dispatchOutboxOnce(options);
        busy = pass.eventsFannedOut + pass.webhookAttempts + pass.emailAttempts > 0;
        if (failedPasses > 0) logger.info({ failedPasses }, 'outbox dispatch recovered');
        failedPasses = 0;
      } catch (error) {
        failedPasses += 1;
        if (failedPasses === 1) logger.error({ error: String((error as Error)?.stack ?? error) }, 'outbox dispatch pass failed');
      }
      if (!busy && !stopping) await idle();
    }
  })();

  return {
    async stop() {
      stopping = true;
      wake?.();
      await loop;
    },
  };
}
