/**
 * The email channel: the message, the sinks it is written to, and its configuration from the environment.
 * The wording of each mail is in email-rendering.ts.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { EmailDeliveryRow } from '../store/notifications';
import type { RetryPolicy } from './delivery-policy';

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

/**
 * A header's value on one line: a line break in it (a plan or customer name stored before the API refused them)
 * would end the header and start another ("Bcc: ..."), or the body. Each run of control characters is one space.
 */
export function headerValue(value: string): string {
  return value.replace(/[\p{Cc}\u2028\u2029]+/gu, ' ');
}

/** The message as a plain-text file with RFC 5322-style headers, readable in any editor or mail client. */
export function formatEmailFile(message: EmailMessage): string {
  return [
    `Message-ID: <${headerValue(message.id)}@meterloop>`,
    `Date: ${message.date.toUTCString()}`,
    `From: ${headerValue(message.from)}`,
    `To: ${headerValue(message.to)}`,
    `Subject: ${headerValue(message.subject)}`,
    `X-Meterloop-Event: ${headerValue(message.eventType)}`,
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

/**
 * Events for the operator, never mailed to the customer (webhooks still carry them to the operator's systems):
 * `subscription.needs_attention` says billing stopped on a failed step, with our internal failure message.
 */
export const OPERATOR_ONLY_EVENT_TYPES: readonly string[] = ['subscription.needs_attention'];

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

export const DEFAULT_EMAIL_FROM = 'Meterloop Billing <billing@meterloop.local>';

/** The message for a claimed delivery row, as the channel sends it. */
export function emailMessageFor(row: EmailDeliveryRow, channel: EmailChannelOptions): EmailMessage {
  return {
    id: `email-${String(row.id).padStart(12, '0')}`, // sorts in sending order in a folder listing
    from: channel.from ?? DEFAULT_EMAIL_FROM,
    to: row.recipient,
    subject: row.subject,
    text: row.body,
    eventType: row.event_type,
    date: new Date(row.created_at),
  };
}
