/**
 * The email channel of the outbox dispatcher: readable plain text per event type, one file per mail in the
 * file sink's folder, retries when the sink fails, and no mail for customers without an address.
 */
import { mkdtempSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { EmailMessage, EmailSink, FileEmailSink, LogEmailSink } from '../../notifications/email';
import type { Logger } from '../../notifications/logger';
import { dispatchOutboxOnce } from '../../notifications/outbox-dispatcher';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import type { EmailDeliveryRow } from '../../store/notifications';
import { enqueueOutboxEvent } from '../../store/outbox';
import type { CustomerRow } from '../../store/customers';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;
const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

afterEach(async () => {
  await db('outbox').whereNull('dispatched_at').update({ dispatched_at: db.fn.now() });
  await db('email_deliveries').where({ status: 'pending' }).update({ status: 'failed', next_attempt_at: null });
});

async function insertInvoice(customer: CustomerRow, number: string, total: string): Promise<InvoiceRow> {
  const [row] = await db<InvoiceRow>('invoices')
    .insert({
      number,
      customer_id: customer.id,
      kind: 'period',
      status: 'open',
      currency: 'USD',
      period_start: new Date('2030-01-01T00:00:00Z'),
      period_end: new Date('2030-02-01T00:00:00Z'),
      total,
      finalized_at: new Date(),
    })
    .returning('*');
  return row;
}

async function emit(eventType: string, aggregateId: string, payload: Record<string, unknown>): Promise<void> {
  await db.transaction((trx) =>
    enqueueOutboxEvent(trx, { eventType, aggregateType: 'invoice', aggregateId, dedupeKey: `${eventType}:${randomUUID()}`, payload }),
  );
}

async function readMails(folder: string): Promise<Map<string, string>> {
  const files = (await fs.readdir(folder)).filter((file) => file.endsWith('.eml')).sort();
  return new Map(await Promise.all(files.map(async (file) => [file, await fs.readFile(path.join(folder, file), 'utf8')] as const)));
}

test('each event becomes one readable plain-text file in the sink folder', async () => {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'meterloop-mail-'));
  const customer = await insertCustomer(db, { name: 'Ada Lovelace', email: 'ada@example.com' });
  const invoice = await insertInvoice(customer, 'INV-000042', '29.000000000000');
  const base = { invoiceId: invoice.id, customerId: customer.id };
  await emit('invoice.finalized', invoice.id, { ...base, number: 'INV-000042', total: '29.000000000000', currency: 'USD' });
  await emit('payment.failed', invoice.id, { ...base, invoiceNumber: 'INV-000042', amount: '29.00', currency: 'USD', declineCode: 'insufficient_funds', retryable: true });
  await emit('dunning.retry_scheduled', invoice.id, { ...base, attempt: 2, at: '2030-01-03T00:00:00.000Z' });
  await emit('payment.succeeded', invoice.id, { ...base, invoiceNumber: 'INV-000042', amount: '29.00', currency: 'USD' });
  await emit('refund.succeeded', invoice.id, { ...base, invoiceNumber: 'INV-000042', amount: '10.00', currency: 'USD', creditNoteNumber: 'CN-000001' });
  await emit('loyalty.badge_awarded', invoice.id, { ...base, badge: 'early adopter', level: 3 }); // a type no template knows

  const pass = await dispatchOutboxOnce({ db, email: { sink: new FileEmailSink(folder), from: 'Billing <billing@example.com>' }, logger: quiet });
  expect(pass).toMatchObject({ eventsFannedOut: 6, emailAttempts: 6 });

  const mails = [...(await readMails(folder)).values()];
  expect(mails).toHaveLength(6);
  for (const mail of mails) {
    expect(mail).toContain('To: ada@example.com');
    expect(mail).toContain('From: Billing <billing@example.com>');
    expect(mail).toContain('Hello Ada Lovelace,');
    // Readable: no raw NUMERIC padding, no leaked placeholders.
    expect(mail).not.toMatch(/\d\.\d{3,}|undefined|\[object Object\]|NaN/);
  }
  const [finalized, failed, dunning, succeeded, refunded, generic] = mails;
  expect(finalized).toContain('Subject: Invoice INV-000042 for 29.00 USD');
  expect(finalized).toContain('Amount due:  29.00 USD');
  expect(finalized).toContain('Period:      1 January 2030 - 1 February 2030');
  expect(failed).toContain('Subject: Payment failed for invoice INV-000042');
  expect(failed).toContain('We could not collect 29.00 USD for invoice INV-000042: the card was declined for insufficient funds.');
  expect(failed).toContain('We will try again automatically.');
  expect(dunning).toContain('We will try your payment method again on 3 January 2030.');
  expect(succeeded).toContain('We received your payment of 29.00 USD for invoice INV-000042. Thank you.');
  expect(refunded).toContain('Subject: Refund of 10.00 USD on its way');
  expect(generic).toContain('Subject: Update: loyalty badge awarded');
  expect(generic).toContain('  badge: early adopter');
  expect(generic).toContain('  level: 3');

  const rows = await db<EmailDeliveryRow>('email_deliveries').where({ recipient: 'ada@example.com' });
  expect(rows.every((row) => row.status === 'delivered' && row.attempt === 1)).toBe(true);
  console.log(`--- example mail (file sink) ---\n${failed}`);
});

test('a customer without an email address gets no mail; the event still leaves the outbox', async () => {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'meterloop-mail-'));
  const customer = await insertCustomer(db, { email: null });
  const invoice = await insertInvoice(customer, `INV-${randomUUID().slice(0, 6)}`, '5');
  await emit('invoice.finalized', invoice.id, { invoiceId: invoice.id, customerId: customer.id });
  expect(await dispatchOutboxOnce({ db, email: { sink: new FileEmailSink(folder) }, logger: quiet })).toMatchObject({ eventsFannedOut: 1, emailAttempts: 0 });
  expect(await readMails(folder)).toEqual(new Map());
  expect(await db('outbox').where({ aggregate_id: invoice.id }).whereNull('dispatched_at')).toHaveLength(0);
});

test('a failing sink is retried with backoff; the same mail is sent once it recovers', async () => {
  const customer = await insertCustomer(db, { email: 'flaky@example.com' });
  const invoice = await insertInvoice(customer, `INV-${randomUUID().slice(0, 6)}`, '7.5');
  await emit('payment.succeeded', invoice.id, { invoiceId: invoice.id, customerId: customer.id, amount: '7.50', currency: 'USD' });
  const sent: EmailMessage[] = [];
  let failures = 1;
  const sink: EmailSink = {
    async send(message) {
      if (failures-- > 0) throw new Error('mail server said 421 try later');
      sent.push(message);
    },
  };
  // Due times are Postgres's now() plus the backoff: the test checks the backoff, then makes the retry due
  // by moving the due time back one backoff (what waiting would do) instead of waiting for it.
  const backoffMs = 60_000;
  const email = { sink, retry: { initialBackoffMs: backoffMs, jitter: 0 } };

  const before = Date.now();
  await dispatchOutboxOnce({ db, email, logger: quiet });
  const after = Date.now();
  const [pending] = await db<EmailDeliveryRow>('email_deliveries').where({ recipient: 'flaky@example.com' });
  expect(pending).toMatchObject({ status: 'pending', attempt: 1, last_error: 'mail server said 421 try later' });
  // Postgres and the test read the same machine clock; 50 ms of slack for the two reads.
  expect(pending.next_attempt_at!.getTime()).toBeGreaterThanOrEqual(before + backoffMs - 50);
  expect(pending.next_attempt_at!.getTime()).toBeLessThanOrEqual(after + backoffMs + 50);
  expect(await dispatchOutboxOnce({ db, email, logger: quiet })).toMatchObject({ emailAttempts: 0 }); // not due yet

  await db('email_deliveries').where({ id: pending.id }).update({ next_attempt_at: db.raw(`next_attempt_at - ? * interval '1 millisecond'`, [backoffMs]) });
  await dispatchOutboxOnce({ db, email, logger: quiet });
  const [delivered] = await db<EmailDeliveryRow>('email_deliveries').where({ recipient: 'flaky@example.com' });
  expect(delivered).toMatchObject({ status: 'delivered', attempt: 2, last_error: null });
  expect(sent).toHaveLength(1);
  expect(sent[0]).toMatchObject({ to: 'flaky@example.com', subject: `Payment received for invoice ${invoice.number}` });
});

test('the log sink writes one JSON line per mail', async () => {
  const lines: string[] = [];
  await new LogEmailSink((line) => lines.push(line)).send({
    id: 'email-1',
    from: 'billing@example.com',
    to: 'ada@example.com',
    subject: 'Hello',
    text: 'Body',
    eventType: 'invoice.finalized',
    date: new Date('2030-01-01T00:00:00Z'),
  });
  expect(lines.map((line) => JSON.parse(line))).toEqual([expect.objectContaining({ msg: 'email', to: 'ada@example.com', subject: 'Hello', text: 'Body' })]);
});
