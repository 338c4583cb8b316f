/**
 * Notifications: the delivery side of the transactional outbox.
 *
 *   outbox (written with each change) --fan-out--> webhook_deliveries (one per matching endpoint)
 *                                             \--> email_deliveries   (one per event with a customer email)
 *   due deliveries --HTTP POST, signed--> endpoints;  --EmailSink--> file folder / log
 *
 * The dispatcher is a plain loop in the worker process (`startOutboxDispatcher`), not a Temporal activity:
 * it needs no durable timers of its own (retry times are rows in Postgres), and every claim uses
 * FOR UPDATE SKIP LOCKED, so several worker processes can run it side by side. Delivery is at-least-once:
 * receivers dedupe on the event id (`Meterloop-Event-Id`).
 *
 * Webhook signature (docs/payments.md): header `Meterloop-Signature: t=<unix seconds>,v1=<hex>` where
 * v1 = hex(HMAC-SHA256(key = the endpoint secret as UTF-8, message = "<t>.<raw body>")).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { formatMoney, isDecimalString, isSupportedCurrency, toDecimal } from '../domain/money';
import type { Database } from '../store/database';
import {
  ClaimedWebhookDelivery,
  claimDueEmailDeliveries,
  claimDueWebhookDeliveries,
  claimUndispatchedEvents,
  EmailContext,
  EmailDeliveryRow,
  enabledWebhookEndpoints,
  eventTypeMatches,
  generateWebhookSecret,
  insertEmailDeliveries,
  insertWebhookDeliveries,
  loadEmailContext,
  markEventsDispatched,
  OutboxRow,
  recordEmailAttempt,
  recordWebhookAttempt,
} from '../store/notifications';

// ============================================================================================================
// Webhook signatures
// ============================================================================================================

export const WEBHOOK_SIGNATURE_HEADER = 'Meterloop-Signature';
export const WEBHOOK_SIGNATURE_VERSION = 'v1';
/** How far a signature's timestamp may be from the receiver's clock by default: 5 minutes (replay window). */
export const DEFAULT_SIGNATURE_TOLERANCE_SECONDS = 300;

export { generateWebhookSecret };

/** hex(HMAC-SHA256(secret, "<timestamp>.<body>")): the v1 signature. The body is the raw bytes as sent. */
export function computeWebhookSignature(secret: string, timestampSeconds: number, body: string | Buffer): string {
  return createHmac('sha256', secret).update(`${timestampSeconds}.`).update(body).digest('hex');
}

/** The header value for a body: `t=<unix seconds>,v1=<hex signature>`. */
export function signWebhookPayload(secret: string, body: string | Buffer, timestampSeconds = Math.floor(Date.now() / 1000)): string {
  return `t=${timestampSeconds},${WEBHOOK_SIGNATURE_VERSION}=${computeWebhookSignature(secret, timestampSeconds, body)}`;
}

/**
 * For receivers: true when `header` (the Meterloop-Signature value) signs exactly `body` (the raw request body,
 * before any JSON parsing) with `secret`, and its timestamp is within `toleranceSeconds` of now. Accepts several
 * v1 entries (we send one per active secret during a rotation). Compares in constant time.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | undefined | null,
  body: string | Buffer,
  toleranceSeconds = DEFAULT_SIGNATURE_TOLERANCE_SECONDS,
  nowSeconds = Math.floor(Date.now() / 1000),
): boolean {
  if (!header || !secret) return false;
  let timestamp: number | null = null;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const separator = part.indexOf('=');
    if (separator < 0) continue;
    const key = part.slice(0, separator).trim();
    const value = part.slice(separator + 1).trim();
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === WEBHOOK_SIGNATURE_VERSION && /^[0-9a-f]{64}$/.test(value)) signatures.push(value);
  }
  if (timestamp === null || signatures.length === 0) return false;
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return false;
  const expected = Buffer.from(computeWebhookSignature(secret, timestamp, body), 'hex');
  return signatures.some((signature) => timingSafeEqual(Buffer.from(signature, 'hex'), expected));
}

// ============================================================================================================
// Retry policy
// ============================================================================================================

export interface RetryPolicy {
  /** Wait after the first failed attempt; doubles after each further failure. */
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** Attempts in all, the first included; after the last failure the delivery is `failed`. */
  readonly maxAttempts: number;
  /** Spread of each wait, +/- this fraction (0.1 = 10%), so retries of many deliveries do not fall in step. */
  readonly jitter: number;
}

/** 30 s, 1 m, 2 m, ... capped at 6 h; 12 attempts span about 17 hours. */
export const DEFAULT_WEBHOOK_RETRY: RetryPolicy = { initialBackoffMs: 30_000, maxBackoffMs: 6 * 3_600_000, maxAttempts: 12, jitter: 0.1 };
export const DEFAULT_EMAIL_RETRY: RetryPolicy = { initialBackoffMs: 60_000, maxBackoffMs: 3_600_000, maxAttempts: 8, jitter: 0.1 };

/** The wait after failed attempt number `attempt` (1-based): initial * 2^(attempt-1), capped, with jitter. */
export function retryDelayMs(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const base = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** Math.max(0, attempt - 1));
  return Math.max(0, Math.round(base * (1 + policy.jitter * (random() * 2 - 1))));
}

// ============================================================================================================
// Email: rendering and sinks
// ============================================================================================================

export interface EmailMessage {
  /** Stable per delivery (`email-<zero-padded id>`): a retried send overwrites, never duplicates, in the file sink. */
  readonly id: string;
  readonly from: string;
  readonly to: string;
  readonly subject: string;
  readonly text: string;
  readonly eventType: string;
  readonly date: Date;
}

/**
 * Where emails go. Shipped: FileEmailSink (one file per mail) and LogEmailSink (one JSON line per mail).
 * SMTP or an email API is one more class implementing `send` (not shipped: it needs a mail package).
 */
export interface EmailSink {
  send(message: EmailMessage): Promise<void>;
}

/** The message as a plain-text file with RFC 5322-style headers, readable in any editor or mail client. */
export function formatEmailFile(message: EmailMessage): string {
  return [
    `Message-ID: <${message.id}@meterloop>`,
    `Date: ${message.date.toUTCString()}`,
    `From: ${message.from}`,
    `To: ${message.to}`,
    `Subject: ${message.subject}`,
    `X-Meterloop-Event: ${message.eventType}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    message.text,
  ].join('\n');
}

export class FileEmailSink implements EmailSink {
  constructor(readonly folder: string) {}

  /** `<folder>/<id>.eml`, written to a temporary name and renamed, so a reader never sees half a mail. */
  async send(message: EmailMessage): Promise<void> {
    await fs.mkdir(this.folder, { recursive: true });
    const file = path.join(this.folder, `${message.id}.eml`);
    const temporary = `${file}.${process.pid}.tmp`;
    await fs.writeFile(temporary, formatEmailFile(message), 'utf8');
    await fs.rename(temporary, file);
  }
}

export class LogEmailSink implements EmailSink {
  constructor(private readonly write: (line: string) => void = (line) => console.log(line)) {}

  async send(message: EmailMessage): Promise<void> {
    this.write(JSON.stringify({ level: 'info', msg: 'email', id: message.id, to: message.to, subject: message.subject, text: message.text }));
  }
}

const DECLINE_REASONS: Readonly<Record<string, string>> = {
  insufficient_funds: 'the card was declined for insufficient funds',
  expired_card: 'the card has expired',
  payment_method_missing: 'there is no payment method on file',
  unknown_payment_method: 'the payment method on file was not recognised',
};

const STATUS_SUBJECTS: Readonly<Record<string, (plan: string) => [string, string]>> = {
  suspended: (plan) => [`Your ${plan} subscription is suspended`, `We could not collect payment for your ${plan} subscription after several attempts, so it is suspended until the open invoice is paid.`],
  paused: (plan) => [`Your ${plan} subscription is paused`, `Your ${plan} subscription is paused; you are not billed while it is.`],
  retention_offered: (plan) => [`About cancelling ${plan}`, `We received your request to cancel ${plan}; we have sent you an offer to consider first.`],
  scheduled: (plan) => [`Your ${plan} subscription is scheduled`, `Your ${plan} subscription is scheduled and will start on its start date.`],
  trialing: (plan) => [`Your ${plan} trial has started`, `Your free trial of ${plan} has started. We will not charge you before it ends.`],
  active: (plan) => [`Your ${plan} subscription is active`, `Your ${plan} subscription is active.`],
  past_due: (plan) => [`Your ${plan} subscription is past due`, `We could not collect the latest payment for your ${plan} subscription, so it is past due.`],
  pending_cancellation: (plan) => [`Your ${plan} subscription will end`, `Your ${plan} subscription is set to end at the close of the current billing period.`],
  canceled: (plan) => [`Your ${plan} subscription has ended`, `Your ${plan} subscription has been canceled.`],
};

const str = (value: unknown): string | null => (typeof value === 'string' && value.length > 0 ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : null);

function formatDate(value: unknown): string | null {
  const text = value instanceof Date ? value.toISOString() : str(value);
  if (!text) return null;
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return text;
  return date.toLocaleDateString('en-GB', { timeZone: 'UTC', day: 'numeric', month: 'long', year: 'numeric' });
}

function money(amount: unknown, currency: unknown): string | null {
  const value = str(amount);
  const code = str(currency);
  if (!value || !code) return null;
  return isDecimalString(value) && isSupportedCurrency(code) ? `${formatMoney(toDecimal(value), code)} ${code}` : `${value} ${code}`;
}

function humanize(eventType: string): string {
  return eventType.replace(/[._]/g, ' ');
}

export interface RenderedEmail {
  readonly subject: string;
  readonly text: string;
}

/**
 * Plain, readable text per event type. Known types get their own wording; any other type (events the
 * workflow adds later) gets a generic message listing the event's fields, so nothing is ever dropped.
 */
export function renderEmail(eventType: string, payload: Record<string, unknown>, context: EmailContext, brand = 'Meterloop'): RenderedEmail {
  const invoiceNumber = str(payload.invoiceNumber) ?? context.invoice?.number ?? null;
  const invoiceLabel = invoiceNumber ? `invoice ${invoiceNumber}` : 'your invoice';
  const amount =
    money(payload.amount, payload.currency) ??
    (context.invoice ? money(context.invoice.total, context.invoice.currency) : null) ??
    'the amount due';
  const plan = str(payload.planName) ?? context.planName ?? 'billing';
  const reason = str(payload.reason);
  let subject: string;
  let lines: string[];

  switch (eventType) {
    case 'invoice.finalized': {
      const total = money(payload.total, payload.currency) ?? amount;
      subject = `${invoiceNumber ? `Invoice ${invoiceNumber}` : 'Your invoice'} for ${total}`;
      lines = [`Your ${invoiceLabel} is ready.`, '', `  Amount due:  ${total}`];
      if (context.invoice) lines.push(`  Period:      ${formatDate(context.invoice.periodStart)} - ${formatDate(context.invoice.periodEnd)}`);
      lines.push('', 'We will charge your payment method on file; there is nothing you need to do.');
      break;
    }
    case 'payment.succeeded':
      subject = `Payment received for ${invoiceLabel}`;
      lines = [`We received your payment of ${amount} for ${invoiceLabel}. Thank you.`];
      break;
    case 'payment.failed': {
      const code = str(payload.declineCode) ?? 'declined';
      const why = DECLINE_REASONS[code] ?? `the payment was declined (${code})`;
      subject = `Payment failed for ${invoiceLabel}`;
      lines = [`We could not collect ${amount} for ${invoiceLabel}: ${why}.`, ''];
      lines.push(
        payload.retryable === false
          ? 'Please add a new payment method; this one cannot be charged again.'
          : 'We will try again automatically. To settle it sooner, update your payment method and we will retry at once.',
      );
      break;
    }
    case 'dunning.retry_scheduled': {
      const next = formatDate(payload.at ?? payload.nextAttemptAt);
      subject = `Reminder: ${invoiceLabel} is still unpaid`;
      lines = [`${amount} for ${invoiceLabel} is still unpaid.`];
      if (next) lines.push('', `We will try your payment method again on ${next}.`);
      lines.push('', 'Updating your payment method makes us retry at once.');
      break;
    }
    case 'invoice.uncollectible':
      subject = `We could not collect ${invoiceLabel}`;
      lines = [`After several attempts we could not collect ${amount} for ${invoiceLabel}.`];
      if (reason) lines.push('', `Reason: ${reason}`);
      lines.push('', 'Please contact us to settle it.');
      break;
    case 'credit_note.issued': {
      const creditNote = str(payload.creditNoteNumber);
      subject = `${creditNote ? `Credit note ${creditNote}` : 'A credit note'} for ${invoiceLabel}`;
      lines = [`We issued ${creditNote ? `credit note ${creditNote}` : 'a credit note'} of ${amount} for ${invoiceLabel}.`];
      if (reason) lines.push('', `Reason: ${reason}`);
      lines.push('', 'The amount is refunded to the payment method you paid with.');
      break;
    }
    case 'refund.succeeded':
      subject = `Refund of ${amount} on its way`;
      lines = [`We refunded ${amount} for ${invoiceLabel} to the payment method you paid with.`, '', 'Depending on your bank, it appears within 5 to 10 business days.'];
      break;
    case 'refund.failed':
      subject = `Refund of ${amount} could not be sent`;
      lines = [`We could not send the refund of ${amount} for ${invoiceLabel} to your payment method. We will be in touch about another way.`];
      break;
    case 'customer.payment_method_updated':
      subject = 'Your payment method was updated';
      lines = ['Your payment method on file was updated. Future payments, and any open ones, use the new method.'];
      break;
    case 'trial.ending': {
      const trialEnd = formatDate(payload.trialEnd);
      subject = `Your ${plan} trial ends${trialEnd ? ` on ${trialEnd}` : ' soon'}`;
      lines = [`Your free trial of ${plan} ends${trialEnd ? ` on ${trialEnd}` : ' soon'}. After that, your subscription continues and we charge your payment method on file.`];
      break;
    }
    case 'retention.offered':
    case 'win_back.offered': {
      const terms = (payload.terms ?? {}) as Record<string, unknown>;
      const percentOff = str(terms.percentOff);
      const periods = str(terms.periods);
      const expires = formatDate(payload.expiresAt);
      subject = eventType === 'retention.offered' ? 'An offer before you go' : `Come back to ${plan}`;
      lines = [eventType === 'retention.offered' ? `We are sorry to see you consider leaving ${plan}.` : `We would love to have you back on ${plan}.`];
      if (percentOff) lines.push('', `Our offer: ${percentOff}% off${periods ? ` your next ${periods} invoice${periods === '1' ? '' : 's'}` : ''}.`);
      if (expires) lines.push('', `The offer is open until ${expires}.`);
      break;
    }
    case 'subscription.plan_changed':
      subject = `Your subscription now uses ${plan}`;
      lines = [`Your subscription was changed to ${plan}${str(payload.effective) ? ` (${humanize(str(payload.effective)!)})` : ''}.`];
      break;
    case 'spending.threshold_reached': {
      const spend = money(payload.spend, payload.currency);
      const limit = money(payload.limit, payload.currency);
      subject = `Your ${plan} usage reached ${str(payload.threshold) ?? 'a'}${str(payload.threshold) ? '%' : ''} of your limit`;
      lines = [`Your spend this period is ${spend ?? 'above your alert threshold'}${limit ? `, against a limit of ${limit}` : ''}.`];
      break;
    }
    default: {
      const status = eventType.startsWith('subscription.') ? STATUS_SUBJECTS[eventType.slice('subscription.'.length)] : undefined;
      if (status) {
        const [statusSubject, statusLine] = status(plan);
        subject = statusSubject;
        lines = [statusLine];
        if (reason) lines.push('', `Reason: ${reason}`);
        if (eventType === 'subscription.past_due' || eventType === 'subscription.suspended') lines.push('', 'Updating your payment method makes us retry at once.');
        break;
      }
      // Any other event: say what happened and list its fields, readably.
      subject = `Update: ${humanize(eventType)}`;
      lines = [`There is an update on your account: ${humanize(eventType)}.`, ''];
      for (const [key, value] of Object.entries(payload)) {
        if (key === 'customerId' || value === null || value === undefined) continue;
        lines.push(`  ${key}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`);
      }
    }
  }
  const text = [`Hello ${context.customer.name},`, '', ...lines, '', `-- ${brand} billing`, ''].join('\n');
  return { subject, text };
}

// ============================================================================================================
// The dispatcher
// ============================================================================================================

export interface EmailChannelOptions {
  readonly sink: EmailSink;
  readonly from?: string;
  /** Which events become emails: `*`, `payment.*` or exact types. Default: every event with a customer email. */
  readonly eventTypes?: readonly string[];
  readonly retry?: Partial<RetryPolicy>;
  readonly brand?: string;
}

/**
 * The email channel from the environment:
 *   METERLOOP_EMAIL_DIR=<folder>   one file per mail in that folder (the local default of `npm start`)
 *   METERLOOP_EMAIL_SINK=log       one JSON line per mail on stdout
 *   METERLOOP_EMAIL_FROM=<address> the From header
 * Neither set: no email (webhooks still go out). SMTP is not shipped; it would be one more EmailSink.
 */
export function emailChannelFromEnv(env: NodeJS.ProcessEnv = process.env): EmailChannelOptions | null {
  const from = env.METERLOOP_EMAIL_FROM || undefined;
  if (env.METERLOOP_EMAIL_DIR) return { sink: new FileEmailSink(env.METERLOOP_EMAIL_DIR), from };
  if (env.METERLOOP_EMAIL_SINK === 'log') return { sink: new LogEmailSink(), from };
  return null;
}

export interface OutboxDispatcherOptions {
  readonly db: Database;
  /** Rows per claim (outbox events, webhook deliveries, emails); default 100. */
  readonly batchSize?: number;
  /** Wait when a pass found nothing to do; default 1000 ms. */
  readonly pollIntervalMs?: number;
  readonly webhooks?: Partial<RetryPolicy> & { readonly timeoutMs?: number };
  /** Omit (or null) to send no email; events are still fanned out to webhooks. */
  readonly email?: EmailChannelOptions | null;
  readonly log?: (entry: Record<string, unknown>) => void;
}

export interface DispatchPassResult {
  readonly eventsFannedOut: number;
  readonly webhookAttempts: number;
  readonly emailAttempts: number;
}

const DEFAULT_BATCH_SIZE = 100;
const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000;
const DEFAULT_FROM = 'Meterloop Billing <billing@meterloop.local>';
const defaultLog = (entry: Record<string, unknown>): void => console.log(JSON.stringify(entry));

function webhookPolicy(options: OutboxDispatcherOptions): RetryPolicy & { timeoutMs: number } {
  return { ...DEFAULT_WEBHOOK_RETRY, timeoutMs: DEFAULT_WEBHOOK_TIMEOUT_MS, ...options.webhooks };
}

/** A claimed row stays ours for longer than one request can take; after that it may be retried elsewhere. */
function leaseMs(options: OutboxDispatcherOptions): number {
  return webhookPolicy(options).timeoutMs * 2 + 30_000;
}

/** The JSON body of every webhook: the event envelope around the outbox payload. */
export function webhookBody(event: OutboxRow): string {
  return JSON.stringify({
    id: `evt_${event.id}`,
    type: event.event_type,
    created_at: new Date(event.created_at).toISOString(),
    data: event.payload,
  });
}

/** Fan-out: claims undispatched outbox rows and turns each into its deliveries, in one transaction. */
async function fanOutEvents(options: OutboxDispatcherOptions): Promise<number> {
  const { db } = options;
  return db.transaction(async (trx) => {
    const events = await claimUndispatchedEvents(trx, options.batchSize ?? DEFAULT_BATCH_SIZE);
    if (!events.length) return 0;
    const endpoints = await enabledWebhookEndpoints(trx);
    const webhookRows = events.flatMap((event) =>
      endpoints
        .filter((endpoint) => eventTypeMatches(endpoint.event_types, event.event_type))
        .map((endpoint) => ({ outboxId: event.id, endpointId: endpoint.id, eventType: event.event_type })),
    );
    const emailRows: Array<{ outboxId: string; eventType: string; recipient: string; subject: string; body: string }> = [];
    const email = options.email;
    if (email) {
      for (const event of events) {
        if (!eventTypeMatches(email.eventTypes ?? ['*'], event.event_type)) continue;
        const context = await loadEmailContext(trx, event);
        if (!context?.customer.email) continue;
        const rendered = renderEmail(event.event_type, event.payload ?? {}, context, email.brand);
        emailRows.push({ outboxId: event.id, eventType: event.event_type, recipient: context.customer.email, subject: rendered.subject, body: rendered.text });
      }
    }
    await insertWebhookDeliveries(trx, webhookRows);
    await insertEmailDeliveries(trx, emailRows);
    await markEventsDispatched(trx, events.map((event) => event.id));
    return events.length;
  });
}

async function deliverWebhook(options: OutboxDispatcherOptions, claimed: ClaimedWebhookDelivery): Promise<void> {
  const policy = webhookPolicy(options);
  const { delivery, endpoint, event } = claimed;
  const started = Date.now();
  let statusCode: number | null = null;
  let error: string | null = null;
  if (!endpoint.enabled) {
    error = 'endpoint disabled';
  } else {
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
      statusCode = response.status;
      const text = await response.text().catch(() => '');
      if (response.status < 200 || response.status >= 300) error = `HTTP ${response.status}${text ? `: ${text.slice(0, 500)}` : ''}`;
    } catch (caught) {
      const failure = caught as Error;
      error = failure.name === 'TimeoutError' ? `timeout after ${policy.timeoutMs} ms` : `${failure.message}${failure.cause ? `: ${String((failure.cause as Error).message ?? failure.cause)}` : ''}`;
    }
  }
  const delivered = error === null;
  const outcome = delivered ? 'delivered' : !endpoint.enabled || delivery.attempt >= policy.maxAttempts ? 'failed' : 'retry';
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
  if (!delivered) {
    (options.log ?? defaultLog)({ level: 'warn', msg: 'webhook delivery failed', deliveryId: delivery.id, url: endpoint.url, attempt: delivery.attempt, error, outcome, retryInMs });
  }
}

async function deliverEmail(options: OutboxDispatcherOptions, email: EmailChannelOptions, row: EmailDeliveryRow): Promise<void> {
  const policy = { ...DEFAULT_EMAIL_RETRY, ...email.retry };
  let error: string | null = null;
  try {
    await email.sink.send({
      id: `email-${String(row.id).padStart(12, '0')}`, // sorts in sending order in a folder listing
      from: email.from ?? DEFAULT_FROM,
      to: row.recipient,
      subject: row.subject,
      text: row.body,
      eventType: row.event_type,
      date: new Date(row.created_at),
    });
  } catch (caught) {
    error = (caught as Error).message ?? String(caught);
  }
  const outcome = error === null ? 'delivered' : row.attempt >= policy.maxAttempts ? 'failed' : 'retry';
  await recordEmailAttempt(options.db, {
    deliveryId: row.id,
    attempt: row.attempt,
    error,
    outcome,
    retryInMs: outcome === 'retry' ? retryDelayMs(row.attempt, policy) : undefined,
  });
  if (error) (options.log ?? defaultLog)({ level: 'warn', msg: 'email delivery failed', deliveryId: row.id, attempt: row.attempt, error, outcome });
}

/** One pass: fan out a batch of new events, then try a batch of due webhooks and a batch of due emails. */
export async function dispatchOutboxOnce(options: OutboxDispatcherOptions): Promise<DispatchPassResult> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const eventsFannedOut = await fanOutEvents(options);
  const webhooks = await claimDueWebhookDeliveries(options.db, batchSize, leaseMs(options));
  const email = options.email;
  const emails = email ? await claimDueEmailDeliveries(options.db, batchSize, leaseMs(options)) : [];
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
 * A failing pass (Postgres restarting, say) is logged and retried after the poll interval; it never stops the loop.
 */
export function startOutboxDispatcher(options: OutboxDispatcherOptions): OutboxDispatcher {
  const log = options.log ?? defaultLog;
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

  const loop = (async () => {
    while (!stopping) {
      let busy = false;
      try {
        const pass = await dispatchOutboxOnce(options);
        busy = pass.eventsFannedOut + pass.webhookAttempts + pass.emailAttempts > 0;
      } catch (error) {
        log({ level: 'error', msg: 'outbox dispatch pass failed', error: String((error as Error)?.stack ?? error) });
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
