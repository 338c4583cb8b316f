/**
 * Payment attempts of invoices. The row is written (pending) before the gateway is called, and its idempotency
 * key goes to the gateway; the database keeps at most one pending attempt per invoice
 * (payments_one_pending_per_invoice) and one row per (invoice, attempt).
 */
import type { Knex } from 'knex';
import type { InvoiceRow } from './invoices';

type Db = Knex | Knex.Transaction;

export interface PaymentRow {
  id: string;
  invoice_id: string;
  attempt: number;
  status: 'pending' | 'succeeded' | 'failed';
  amount: string;
  currency: string;
  payment_method: string | null;
  idempotency_key: string;
  gateway_charge_id: string | null;
  failure_code: string | null;
  failure_message: string | null;
  retryable: boolean | null;
  created_at: Date;
  updated_at: Date;
}

export function paymentIdempotencyKey(invoiceId: string, attempt: number): string {
  return `payment:${invoiceId}:${attempt}`;
}

export interface NewPayment {
  readonly invoiceId: string;
  readonly attempt: number;
  readonly amount: string;
  readonly currency: string;
  readonly paymentMethod: string | null;
}

/**
 * Inserts a pending attempt. Returns null when any barrier says no: this attempt exists already, or another
 * attempt of the invoice is still pending. The caller then reads what is there instead.
 */
export async function insertPendingPayment(db: Db, payment: NewPayment): Promise<PaymentRow | null> {
  const [row] = await db<PaymentRow>('payments')
    .insert({
      invoice_id: payment.invoiceId,
      attempt: payment.attempt,
      status: 'pending',
      amount: payment.amount,
      currency: payment.currency,
      payment_method: payment.paymentMethod,
      idempotency_key: paymentIdempotencyKey(payment.invoiceId, payment.attempt),
    })
    .onConflict()
    .ignore()
    .returning('*');
  return row ?? null;
}

/** A payment decided without the gateway (no payment method on file): written failed at once, idempotently. */
export async function insertFailedPayment(
  db: Db,
  payment: NewPayment & { readonly failureCode: string; readonly failureMessage: string; readonly retryable: boolean },
): Promise<PaymentRow | null> {
  const [row] = await db<PaymentRow>('payments')
    .insert({
      invoice_id: payment.invoiceId,
      attempt: payment.attempt,
      status: 'failed',
      amount: payment.amount,
      currency: payment.currency,
      payment_method: payment.paymentMethod,
      idempotency_key: paymentIdempotencyKey(payment.invoiceId, payment.attempt),
      failure_code: payment.failureCode,
      failure_message: payment.failureMessage,
      retryable: payment.retryable,
    })
    .onConflict()
    .ignore()
    .returning('*');
  return row ?? null;
}

export async function findPaymentAttempt(db: Db, invoiceId: string, attempt: number): Promise<PaymentRow | undefined> {
  return db<PaymentRow>('payments').where({ invoice_id: invoiceId, attempt }).first();
}

export async function listPendingPayments(db: Db, invoiceId: string): Promise<PaymentRow[]> {
  return db<PaymentRow>('payments').where({ invoice_id: invoiceId, status: 'pending' }).orderBy('attempt');
}

/** The payment that paid the invoice (there is at most one). */
export async function findSucceededPayment(db: Db, invoiceId: string): Promise<PaymentRow | undefined> {
  return db<PaymentRow>('payments').where({ invoice_id: invoiceId, status: 'succeeded' }).first();
}

export type PaymentSettlement =
  | { readonly status: 'succeeded'; readonly chargeId: string }
  | { readonly status: 'failed'; readonly chargeId: string | null; readonly failureCode: string; readonly retryable: boolean };

/**
 * Records the gateway's answer on a pending payment. Returns null when the row is no longer pending: a
 * concurrent execution settled it first, and its answer (the same charge, by key) stands.
 */
export async function settlePayment(trx: Knex.Transaction, paymentId: string, settlement: PaymentSettlement): Promise<PaymentRow | null> {
  const changes =
    settlement.status === 'succeeded'
      ? { status: 'succeeded', gateway_charge_id: settlement.chargeId }
      : {
          status: 'failed',
          gateway_charge_id: settlement.chargeId,
          failure_code: settlement.failureCode,
          failure_message: `declined: ${settlement.failureCode}`,
          retryable: settlement.retryable,
        };
  const [row] = await trx<PaymentRow>('payments')
    .where({ id: paymentId, status: 'pending' })
    .update({ ...changes, updated_at: trx.fn.now() } as never)
    .returning('*');
  return row ?? null;
}

/**
 * Open (or uncollectible: money may still come in after dunning gave up) -> paid. Returns the updated row,
 * or null when the invoice was not in a payable state (already paid). `has_credit_notes`, read in the same
 * statement, tells the payment whether notes issued while it was unpaid may be owed a refund (the rare case: it costs
 * the usual payment no query of its own).
 */
export async function markInvoicePaid(trx: Knex.Transaction, invoiceId: string): Promise<(InvoiceRow & { has_credit_notes: boolean }) | null> {
  const [row] = await trx<InvoiceRow>('invoices')
    .where({ id: invoiceId })
    .whereIn('status', ['open', 'uncollectible'])
    .update({ status: 'paid', paid_at: trx.fn.now() as unknown as Date })
    .returning(['*', trx.raw("EXISTS (SELECT 1 FROM invoices note WHERE note.credited_invoice_id = invoices.id AND note.kind = 'credit_note') AS has_credit_notes")]);
  return (row as (InvoiceRow & { has_credit_notes: boolean }) | undefined) ?? null;
}

/** Open -> uncollectible. Returns null when the invoice is not open (paid meanwhile, or already marked). */
export async function markInvoiceUncollectible(trx: Knex.Transaction, invoiceId: string): Promise<InvoiceRow | null> {
  const [row] = await trx<InvoiceRow>('invoices')
    .where({ id: invoiceId, status: 'open' })
    .update({ status: 'uncollectible' })
    .returning('*');
  return row ?? null;
}

export async function findPayment(db: Db, paymentId: string): Promise<PaymentRow | undefined> {
  return db<PaymentRow>('payments').where({ id: paymentId }).first();
}

/**
 * Whether the open invoice's customer has a payment method on file that its last attempt did not use (replaced while
 * that attempt was at the gateway). Read under the customer's row lock: a replacement committing meanwhile
 * (store/customers.ts `replacePaymentMethod` holds that lock) is waited for and seen, or comes after this transaction.
 */
export async function paymentMethodReplacedSinceLastAttempt(trx: Knex.Transaction, invoiceId: string): Promise<boolean> {
  const invoice = await trx<InvoiceRow>('invoices').where({ id: invoiceId, status: 'open' }).first('customer_id');
  if (!invoice) return false;
  const customer: { payment_method: string | null } | undefined = await trx('customers').where({ id: invoice.customer_id }).forShare().first('payment_method');
  if (!customer?.payment_method) return false;
  const last: { payment_method: string | null } | undefined = await trx('payments').where({ invoice_id: invoiceId }).orderBy('attempt', 'desc').first('payment_method');
  return last !== undefined && last.payment_method !== customer.payment_method;
}

/** The payment method on the customer's file right now (a new attempt charges this one; null when none). */
export async function currentPaymentMethodOf(db: Db, customerId: string): Promise<string | null> {
  const customer: { payment_method: string | null } | undefined = await db('customers').where({ id: customerId }).first('payment_method');
  return customer?.payment_method ?? null;
}

/**
 * SQL condition: dunning has announced the next attempt at the invoice `invoiceAlias` (its `dunning.retry_scheduled`
 * notice, keyed `dunning:<invoice>:<attempt>`, is written before each retry), for an instant after the one bound to
 * the `?` placeholder. An ended subscription's status no longer shows that its workflow still collects an invoice
 * (workflows/subscription/collection.ts `collectAfterTheEnd`); this does.
 */
export function nextAttemptAnnouncedSql(invoiceAlias: string): string {
  return `EXISTS (SELECT 1 FROM outbox notice
     WHERE notice.dedupe_key = 'dunning:' || ${invoiceAlias}.id || ':' || ((SELECT coalesce(max(made.attempt), 0) FROM payments made WHERE made.invoice_id = ${invoiceAlias}.id) + 1)
       AND (notice.payload ->> 'at')::timestamptz > ?)`;
}

/**
 * SQL condition: an attempt at the invoice `invoiceAlias` is at the gateway (its payment pending) with another payment
 * method than the one bound to the `?` placeholder. Its decline is then retryable for that method (activities/payments.ts),
 * and no notice announces an attempt after the last one, so this is the only sign that dunning still waits on it.
 */
export function attemptInFlightWithAnotherMethodSql(invoiceAlias: string): string {
  return `EXISTS (SELECT 1 FROM payments flight
     WHERE flight.invoice_id = ${invoiceAlias}.id AND flight.status = 'pending' AND flight.payment_method IS DISTINCT FROM ?)`;
}

/**
 * The workflows of the customer's subscriptions that dun an invoice now, whatever their status says: one asked to
 * cancel at the period's end while past due shows `pending_cancellation` and still waits for its next announced
 * attempt (nextAttemptAnnouncedSql), as does an ended one still collecting, or one whose attempt is at the gateway
 * with another card than `paymentMethod`, the new one (after the end, the last attempt announces none after it:
 * untold, its workflow marked the invoice uncollectible with the new card never tried). An invoice no longer open
 * (paid, or uncollectible once dunning gave up) tells nothing: a card posted after that wakes no dunning.
 */
export async function dunningWorkflowIdsOfCustomer(db: Db, customerId: string, paymentMethod: string, now: Date = new Date()): Promise<string[]> {
  const dunned = `i.subscription_id = s.id AND i.status = 'open' AND (${nextAttemptAnnouncedSql('i')} OR ${attemptInFlightWithAnotherMethodSql('i')})`;
  const rows: { workflow_id: string }[] = await db('subscriptions as s')
    .where('s.customer_id', customerId)
    .whereExists(db('invoices as i').whereRaw(dunned, [now, paymentMethod]).select(db.raw('1')))
    .select('s.workflow_id');
  return rows.map((row) => row.workflow_id);
}
