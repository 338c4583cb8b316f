/**
 * Credit notes and refunds. A finalized invoice is never edited: money going back is a credit note (an
 * `invoices` row of kind `credit_note`, numbered in the gap-free CN series) that points at the invoice it
 * credits, plus a `refunds` row that carries the gateway refund. Amounts on credit notes are positive (the
 * amount credited); the kind gives the direction.
 */
import type Decimal from 'decimal.js';
import type { Knex } from 'knex';
import {
  creditNoteAmount,
  exceedsRefundable,
  isSameRefundAmount,
  isValidRefundAmount,
  RefundableBalance,
  refundableBalance as balanceOf,
} from '../domain/credit-notes';
import { Dec, formatMoney, minorUnitExponent, sumMoney, toDecimal } from '../domain/money';
import { InvoiceRow, nextInvoiceNumber } from './invoices';
import { enqueueOutboxEvent, writeAudit } from './outbox';
import { findSucceededPayment } from './payments';
import { createGrant } from './wallets';
import { lockPurchasedCredit, restoreRefundedCredit, takeBackPurchasedCredit, TOP_UP_INVOICE_KIND, unspentPurchasedCredit } from './wallet-topups';

type Db = Knex | Knex.Transaction;

export const CREDIT_NOTE_KIND = 'credit_note';
export const CREDIT_NOTE_SERIES = 'CN';

export interface CreditNoteRow extends InvoiceRow {
  credited_invoice_id: string;
  idempotency_key: string;
  reason: string;
}

export interface RefundRow {
  id: string;
  credit_note_id: string;
  invoice_id: string;
  payment_id: string;
  amount: string;
  currency: string;
  reason: string;
  status: 'pending' | 'succeeded' | 'failed';
  idempotency_key: string;
  gateway_refund_id: string | null;
  failure_code: string | null;
  created_at: Date;
  updated_at: Date;
}

export type CreditNoteRejection =
  | 'invoice_not_found'
  | 'invoice_not_paid'
  | 'refund_exceeds_paid'
  | 'refund_exceeds_unspent_credit'
  | 'idempotency_key_reused'
  | 'invalid_amount';

/** A refund request the rules refuse; thrown inside the transaction, so nothing is written. */
export class CreditNoteRejectedError extends Error {
  override name = 'CreditNoteRejectedError';
  constructor(
    readonly code: CreditNoteRejection,
    readonly detail: string,
  ) {
    super(detail);
  }
}

export interface CreditNoteRequest {
  readonly invoiceId: string;
  readonly amount: Decimal;
  readonly reason: string;
  /** The client's Idempotency-Key (or a fresh one): the same key for the same invoice is the same credit note. */
  readonly idempotencyKey: string;
  /** Who asked (API key name, 'api'), for the audit log. */
  readonly actor: string;
}

export interface IssuedCreditNote {
  readonly creditNote: CreditNoteRow;
  readonly refund: RefundRow;
  /** false when the idempotency key named an existing credit note: nothing new was written. */
  readonly created: boolean;
}

export function refundIdempotencyKey(creditNoteId: string): string {
  return `refund:${creditNoteId}`;
}

/** The sum of an invoice's credit notes (void ones do not count: a refused top-up refund). */
async function creditNotesTotal(db: Db, invoiceId: string): Promise<Decimal> {
  const [{ credited }] = await db('invoices')
    .where({ credited_invoice_id: invoiceId, kind: CREDIT_NOTE_KIND })
    .whereNot({ status: 'void' })
    .sum<{ credited: string | null }[]>('total as credited');
  return toDecimal(credited ?? '0');
}

/**
 * What the customer paid for an invoice and what has been credited back: its credit notes (void ones do not count)
 * and the refunds of credit totals paid from its payment (store/credit-total-refunds.ts: those have no credit note).
 */
export async function refundableBalance(db: Db, invoiceId: string): Promise<RefundableBalance> {
  const payment = await findSucceededPayment(db, invoiceId);
  const credited = await creditNotesTotal(db, invoiceId);
  const [{ refunded }] = await db('refunds as r')
    .join('invoices as credit', 'credit.id', 'r.credit_note_id')
    .where('r.invoice_id', invoiceId)
    .whereNot('credit.kind', CREDIT_NOTE_KIND)
    .sum<{ refunded: string | null }[]>('r.amount as refunded');
  // Credit applied to the charge (notes issued while the invoice was unpaid, chargeInvoice collected only the rest)
  // never came out of the payment: it does not lower what is left to refund of it.
  const applied = payment ? await creditAppliedToCharge(db, invoiceId, payment.amount, credited) : toDecimal('0');
  return balanceOf(payment?.amount ?? null, credited.minus(applied).plus(toDecimal(refunded ?? '0')).toFixed());
}

/**
 * What the invoice's unrefunded credit notes still owe it, unpaid: the total less the non-void credit notes issued
 * against it (never below zero). What a charge collects (activities/payments.ts): a note issued before the charge
 * is taken off it, rather than the whole total being charged and the note refunded afterwards (and an invoice
 * credited in full is settled without a charge at all). Only for an invoice nothing has paid yet.
 */
export async function amountOwedAfterCreditNotes(db: Db, invoice: InvoiceRow): Promise<Decimal> {
  const credited = await creditNotesTotal(db, invoice.id);
  // Credit totals of the invoice's time issued while it was unpaid are taken off it too (store/credit-total-refunds.ts):
  // before, dunning charged the whole invoice while the customer was owed the credit, and an invoice that ended
  // uncollectible left the customer billed in full and owed the credit, nothing netting the two.
  const linked = sumMoney((await creditTotalsTakenOff(db, invoice.id)).map(partTakenOff));
  return Dec.max(0, toDecimal(invoice.total).minus(credited).minus(linked));
}

/**
 * The credit totals (negative invoices, not credit notes) applied to an invoice of their time while it was unpaid
 * (their `credited_invoice_id`, store/credit-total-refunds.ts), oldest first; void ones do not count.
 */
export async function creditTotalsTakenOff(db: Db, invoiceId: string): Promise<InvoiceRow[]> {
  return db<InvoiceRow & { credited_invoice_id: string | null }>('invoices')
    .where({ credited_invoice_id: invoiceId })
    .whereNot({ kind: CREDIT_NOTE_KIND })
    .whereNot({ status: 'void' })
    .where('total', '<', 0)
    .orderBy([{ column: 'finalized_at' }, { column: 'id' }]);
}

/**
 * The part of a credit total its `credited_invoice_id` takes off (`amount_taken_off`): what that invoice owed when
 * the credit was applied, when that was less than the credit (the rest is refunded); all of it when NULL (a credit
 * that fit, and every one applied before the column).
 */
export function partTakenOff(credit: InvoiceRow): Decimal {
  const part = credit.amount_taken_off;
  return part === null || part === undefined ? toDecimal(credit.total).negated() : toDecimal(part);
}

/**
 * What each credit total applied to `invoice` took off what it owes: while the invoice is unpaid (open or
 * uncollectible), all of it (its charge asks for that much less); once paid, what its charge left uncollected
 * (total − payment), credit totals first, oldest first (a credit applied after the charge was already at the gateway
 * for more took nothing off: it is refunded from the payment instead); nothing once the invoice is void. Stable once
 * paid: no credit total is applied to a paid invoice, and credit notes come after them.
 */
export async function creditTotalsAppliedTo(db: Db, invoice: InvoiceRow): Promise<Map<string, Decimal>> {
  const applied = new Map<string, Decimal>();
  const credits = await creditTotalsTakenOff(db, invoice.id);
  if (credits.length === 0 || invoice.status === 'void' || invoice.status === 'draft') return applied;
  let budget: Decimal | null = null; // null: unpaid, every credit counts in full
  if (invoice.status === 'paid') {
    const payment = await findSucceededPayment(db, invoice.id);
    budget = Dec.max(0, toDecimal(invoice.total).minus(toDecimal(payment?.amount ?? '0')));
  }
  for (const credit of credits) {
    const whole = partTakenOff(credit);
    const part: Decimal = budget === null ? whole : Dec.min(whole, budget);
    applied.set(credit.id, part);
    if (budget !== null) budget = budget.minus(part);
  }
  return applied;
}

/**
 * The part of the invoice's credit notes its charge took off (total − payment, within the notes' sum; zero for a
 * payment of the whole total, as every payment was before charges took notes off). `credited` is the notes' sum, as
 * the caller read it.
 */
async function creditAppliedToCharge(db: Db, invoiceId: string, paymentAmount: string, credited: Decimal): Promise<Decimal> {
  const invoice = await db<InvoiceRow>('invoices').where({ id: invoiceId }).first();
  // Credit totals applied to the charge come first (creditTotalsAppliedTo): what they took off is not the notes'.
  const totals = invoice ? sumMoney([...(await creditTotalsAppliedTo(db, invoice)).values()]) : toDecimal('0');
  const uncharged = Dec.max(0, toDecimal(invoice?.total ?? '0').minus(toDecimal(paymentAmount)).minus(totals));
  return Dec.min(uncharged, credited);
}

/**
 * Settles (paid, no refund) the open credit notes of an invoice that a charge took off, oldest first, within
 * `budget`; returns the notes with what each had applied. A note applied only in part is left for the caller to
 * refund the rest of.
 */
async function applyCreditNotesToCharge(trx: Knex.Transaction, notes: readonly CreditNoteRow[], budget: Decimal): Promise<Map<string, Decimal>> {
  const applied = new Map<string, Decimal>();
  let left = budget;
  for (const note of notes) {
    const part = Dec.min(toDecimal(note.total), left);
    if (!part.isPositive() || part.isZero()) break;
    left = left.minus(part);
    applied.set(note.id, part);
    if (part.equals(toDecimal(note.total))) {
      await trx('invoices').where({ id: note.id, status: 'open' }).update({ status: 'paid', paid_at: trx.fn.now() });
    }
  }
  return applied;
}

/**
 * Issues a credit note with its pending refund, in one transaction, with an audit record of who asked and why.
 * The credited invoice's row lock serializes concurrent refunds of it, so together they never exceed what was
 * paid. A top-up invoice's refund also takes that much of the credit it bought back, in the same transaction.
 * Rejections throw CreditNoteRejectedError before anything is written.
 */
export async function issueCreditNote(db: Knex | Knex.Transaction, request: CreditNoteRequest): Promise<IssuedCreditNote> {
  return db.transaction(async (trx) => {
    const invoice = await trx<InvoiceRow>('invoices').where({ id: request.invoiceId }).forUpdate().first();
    if (!invoice) throw new CreditNoteRejectedError('invoice_not_found', `no invoice ${request.invoiceId}`);

    const existing = await trx<CreditNoteRow>('invoices')
      .where({ credited_invoice_id: invoice.id, idempotency_key: request.idempotencyKey, kind: CREDIT_NOTE_KIND })
      .first();
    if (existing) {
      if (!isSameRefundAmount(existing.total, request.amount)) {
        throw new CreditNoteRejectedError(
          'idempotency_key_reused',
          `Idempotency-Key ${request.idempotencyKey} was used for a refund of ${formatMoney(toDecimal(existing.total), existing.currency)} ${existing.currency}`,
        );
      }
      const refund = (await trx<RefundRow>('refunds').where({ credit_note_id: existing.id }).first())!;
      return { creditNote: existing, refund, created: false };
    }

    if (invoice.kind === CREDIT_NOTE_KIND || invoice.status !== 'paid') {
      throw new CreditNoteRejectedError('invoice_not_paid', `invoice ${invoice.id} is ${invoice.kind === CREDIT_NOTE_KIND ? 'a credit note' : invoice.status}; only paid invoices can be refunded`);
    }
    if (!isValidRefundAmount(request.amount, invoice.currency)) {
      throw new CreditNoteRejectedError('invalid_amount', `amount must be positive with at most ${minorUnitExponent(invoice.currency)} decimals in ${invoice.currency}`);
    }
    const payment = await findSucceededPayment(trx, invoice.id);
    const balance = await refundableBalance(trx, invoice.id);
    if (!payment || exceedsRefundable(request.amount, balance)) {
      const money = (value: Decimal): string => `${formatMoney(value, invoice.currency)} ${invoice.currency}`;
      throw new CreditNoteRejectedError(
        'refund_exceeds_paid',
        `a refund of ${money(request.amount)} exceeds what is left to refund on invoice ${invoice.number ?? invoice.id}: paid ${money(balance.paid)}, already refunded ${money(balance.credited)}, refundable ${money(balance.remaining)}`,
      );
    }

    // A top-up invoice bought prepaid credit: its cash goes back only with as much of that credit, still unspent,
    // else the customer keeps both (docs/wallets.md). Checked under the wallet's lock, so no draw spends it meanwhile.
    const purchased = invoice.kind === TOP_UP_INVOICE_KIND ? await lockPurchasedCredit(trx, invoice.id) : undefined;
    const unspent = purchased ? unspentPurchasedCredit(purchased) : undefined;
    if (unspent && request.amount.greaterThan(unspent)) {
      throw new CreditNoteRejectedError(
        'refund_exceeds_unspent_credit',
        `a refund of ${formatMoney(request.amount, invoice.currency)} ${invoice.currency} exceeds what is left unspent of the credit top-up invoice ${invoice.number ?? invoice.id} bought: ${formatMoney(unspent, invoice.currency)} ${invoice.currency}${purchased?.grant ? '' : ' (the credit is not granted yet)'}`,
      );
    }

    const amount = creditNoteAmount(request.amount, invoice.currency);
    const creditNote = await insertCreditNote(trx, invoice, { total: amount, idempotencyKey: request.idempotencyKey, reason: request.reason });
    if (purchased) await takeBackPurchasedCredit(trx, purchased, amount, creditNote);
    const number = creditNote.number;
    await insertCreditNoteLine(trx, creditNote, invoice, {
      description: `Refund for invoice ${invoice.number ?? invoice.id}: ${request.reason}`,
      amount,
      breakdown: { paid: balance.paid.toString(), previously_credited: balance.credited.toString() },
    });
    const refund = await insertPendingRefund(trx, { creditNoteId: creditNote.id, invoice, paymentId: payment.id, amount, reason: request.reason });
    await writeAudit(trx, {
      actor: request.actor,
      action: 'invoice.refund_requested',
      subjectType: 'invoice',
      subjectId: invoice.id,
      reason: request.reason,
      details: {
        creditNoteId: creditNote.id,
        creditNoteNumber: number,
        amount,
        currency: invoice.currency,
        refundId: refund.id,
        ...(purchased?.grant ? { creditTakenBack: amount, grantId: purchased.grant.id } : {}),
      },
    });
    await enqueueCreditNoteIssued(trx, creditNote, invoice, amount);
    return { creditNote, refund, created: true };
  });
}

/** The refund of a credit note, pending until the gateway answers under its key (`refund:<credit note id>`). */
export async function insertPendingRefund(
  trx: Knex.Transaction,
  refund: { readonly creditNoteId: string; readonly invoice: InvoiceRow; readonly paymentId: string; readonly amount: string; readonly reason: string; readonly idempotencyKey?: string },
): Promise<RefundRow> {
  const [row] = await trx<RefundRow>('refunds')
    .insert({
      credit_note_id: refund.creditNoteId,
      invoice_id: refund.invoice.id,
      payment_id: refund.paymentId,
      amount: refund.amount,
      currency: refund.invoice.currency,
      reason: refund.reason,
      status: 'pending',
      idempotency_key: refund.idempotencyKey ?? refundIdempotencyKey(refund.creditNoteId),
    })
    .returning('*');
  return row;
}

/**
 * Pending refunds for the credit notes of a paid invoice that have none yet, oldest first: each as much of it as the
 * payment still covers once the refunds before it are counted, nothing once the payment is used up. Written in the
 * caller's transaction, which holds the invoice's row lock (marking it paid, or issuing a note against it); the
 * gateway hears of them after the commit (payments/refunds.ts). Cases only the ingestion of reversals makes:
 * a note issued while its invoice was unpaid (the charge collects the total less it, so it is settled here without
 * a refund; one issued while the charge was already at the gateway for the whole total is refunded), and a note
 * larger than what the payment still covers (refunded in part rather than not at all).
 */
export async function refundCreditNotesOfPaidInvoice(trx: Knex.Transaction, invoice: InvoiceRow): Promise<RefundRow[]> {
  // Open only: a note the charge took off in full is settled (paid) without a refund, and is not owed one.
  const unrefunded: CreditNoteRow[] = await trx('invoices as note')
    .where('note.credited_invoice_id', invoice.id)
    .andWhere('note.kind', CREDIT_NOTE_KIND)
    .andWhere('note.status', 'open')
    .whereNotExists(trx('refunds').whereRaw('refunds.credit_note_id = note.id').select(trx.raw('1')))
    .orderBy([{ column: 'note.finalized_at' }, { column: 'note.created_at' }, { column: 'note.id' }])
    .select('note.*');
  if (unrefunded.length === 0) return []; // the usual case: one query
  const payment = await findSucceededPayment(trx, invoice.id);
  // The charge collected the total less the notes issued before it (chargeInvoice; nothing when they credited it in
  // full): those notes are settled, not refunded. What it took off and no note was settled with yet: total − payment
  // − what earlier notes had taken off (their total less their refund; counted high, so a later note is refunded
  // rather than settled with credit another note already used).
  const [{ taken }] = await trx('invoices as note')
    .leftJoin('refunds as r', 'r.credit_note_id', 'note.id')
    .where('note.credited_invoice_id', invoice.id)
    .andWhere('note.kind', CREDIT_NOTE_KIND)
    .whereNot('note.status', 'void')
    .whereNotIn('note.id', unrefunded.map((note) => note.id))
    .select<{ taken: string | null }[]>(trx.raw('sum(note.total - coalesce(r.amount, 0)) as taken'));
  // Credit totals applied to the invoice took their part of it first (creditTotalsAppliedTo).
  const totals = sumMoney([...(await creditTotalsAppliedTo(trx, invoice)).values()]);
  const budget = Dec.max(0, toDecimal(invoice.total).minus(toDecimal(payment?.amount ?? '0')).minus(toDecimal(taken ?? '0')).minus(totals));
  const applied = await applyCreditNotesToCharge(trx, unrefunded, budget);
  if (!payment) return [];
  // What the payment already gave back: every refund but those of void notes (a refused top-up refund). A refused
  // refund whose amount went to the wallet as credit (settleRefund) counts: it was given, only not in cash.
  const [{ given }] = await trx('refunds as r')
    .join('invoices as given_note', 'given_note.id', 'r.credit_note_id')
    .where('r.invoice_id', invoice.id)
    .whereNot('given_note.status', 'void')
    .sum<{ given: string | null }[]>('r.amount as given');
  let left = toDecimal(payment.amount).minus(toDecimal(given ?? '0'));
  const refunds: RefundRow[] = [];
  for (const note of unrefunded) {
    const owed = toDecimal(note.total).minus(applied.get(note.id) ?? 0);
    if (owed.isZero()) continue; // taken off the charge in full: settled above
    const amount = Dec.min(owed, left);
    if (!amount.isPositive() || amount.isZero()) break;
    left = left.minus(amount);
    refunds.push(await insertPendingRefund(trx, { creditNoteId: note.id, invoice, paymentId: payment.id, amount: formatMoney(amount, invoice.currency), reason: note.reason }));
  }
  return refunds;
}

/**
 * A credit note against `invoice`, numbered in the credit-note series and open until its refund settles (paid once
 * refunded, void if the gateway refuses); its lines are the caller's.
 */
export async function insertCreditNote(
  trx: Knex.Transaction,
  invoice: InvoiceRow,
  note: { readonly total: string; readonly idempotencyKey: string; readonly reason: string },
): Promise<CreditNoteRow> {
  const [creditNote] = await trx<CreditNoteRow>('invoices')
    .insert({
      number: await nextInvoiceNumber(trx, CREDIT_NOTE_SERIES),
      customer_id: invoice.customer_id,
      subscription_id: invoice.subscription_id,
      kind: CREDIT_NOTE_KIND,
      status: 'open',
      currency: invoice.currency,
      period_start: invoice.period_start,
      period_end: invoice.period_end,
      total: note.total,
      // Read after the number (whose counter row stays locked until commit), not at the transaction's start as now()
      // is: a transaction that began first and numbered second showed an earlier issue time than the note before it.
      finalized_at: trx.raw('clock_timestamp()') as unknown as Date,
      credited_invoice_id: invoice.id,
      idempotency_key: note.idempotencyKey,
      reason: note.reason,
    })
    .returning('*');
  return creditNote;
}

/** A credit note's single line: `amount` of the credited invoice's period, with what the note is for. */
export async function insertCreditNoteLine(
  trx: Knex.Transaction,
  creditNote: CreditNoteRow,
  invoice: InvoiceRow,
  line: { readonly description: string; readonly amount: string; readonly breakdown: Record<string, unknown> },
): Promise<void> {
  await trx('invoice_lines').insert({
    invoice_id: creditNote.id,
    position: 0,
    kind: 'refund',
    description: line.description,
    quantity: '1',
    amount: line.amount,
    period_start: invoice.period_start,
    period_end: invoice.period_end,
    breakdown: JSON.stringify({ credited_invoice_id: invoice.id, ...line.breakdown }),
  });
}

/** The `credit_note.issued` webhook of a credit note, once (its dedupe key); `amount` as the caller formatted it. */
export async function enqueueCreditNoteIssued(trx: Knex.Transaction, creditNote: CreditNoteRow, invoice: InvoiceRow, amount: string): Promise<void> {
  await enqueueOutboxEvent(trx, {
    eventType: 'credit_note.issued',
    aggregateType: 'invoice',
    aggregateId: creditNote.id,
    dedupeKey: `credit_note.issued:${creditNote.id}`,
    payload: {
      creditNoteId: creditNote.id,
      creditNoteNumber: creditNote.number,
      invoiceId: invoice.id,
      invoiceNumber: invoice.number,
      customerId: invoice.customer_id,
      amount,
      currency: invoice.currency,
      reason: creditNote.reason,
    },
  });
}

export type RefundSettlement =
  | { readonly status: 'succeeded'; readonly gatewayRefundId: string }
  | { readonly status: 'failed'; readonly gatewayRefundId: string | null; readonly failureCode: string };

/**
 * Records the gateway's answer. Refunded: the credit note becomes paid. Refused: the customer is still owed the
 * money, so it never just disappears (before, the note was voided: a reversal credit note's reversals stayed marked
 * credited by a void note, a re-rating's or finance's credit was gone). A top-up's note is voided and the purchased
 * credit it took back is restored (the customer keeps the credit they paid for, and the cash stays refundable);
 * any other note stays issued, settled (paid) by giving its refund's amount to the customer's wallet as credit
 * that pays the usage on their next invoices (a goodwill grant keyed by the note, so once). Idempotent: a refund that is no
 * longer pending is returned as it is.
 */
export async function settleRefund(db: Knex, refundId: string, settlement: RefundSettlement): Promise<{ creditNote: CreditNoteRow; refund: RefundRow }> {
  return db.transaction(async (trx) => {
    const [updated] = await trx<RefundRow>('refunds')
      .where({ id: refundId, status: 'pending' })
      .update({
        status: settlement.status,
        gateway_refund_id: settlement.gatewayRefundId,
        failure_code: settlement.status === 'failed' ? settlement.failureCode : null,
        updated_at: trx.fn.now() as unknown as Date,
      })
      .returning('*');
    const refund = updated ?? (await trx<RefundRow>('refunds').where({ id: refundId }).first())!;
    if (!updated) {
      return { refund, creditNote: (await trx<CreditNoteRow>('invoices').where({ id: refund.credit_note_id }).first())! };
    }
    const credited = await trx<InvoiceRow>('invoices').where({ id: refund.invoice_id }).first();
    const topUp = credited?.kind === TOP_UP_INVOICE_KIND;
    // A credit total refunded across several paid invoices (store/credit-total-refunds.ts) is settled once the last
    // of its refunds is, and only when they cover it: one refund settled did not pay back the rest.
    const document = (await trx<CreditNoteRow>('invoices').where({ id: refund.credit_note_id }).forUpdate().first())!;
    const settledInFull = document.kind === CREDIT_NOTE_KIND || (await creditTotalSettledByRefunds(trx, document));
    const [creditNote] = settledInFull
      ? await trx<CreditNoteRow>('invoices')
          .where({ id: refund.credit_note_id })
          .update(settlement.status === 'failed' && topUp ? { status: 'void' } : { status: 'paid', paid_at: trx.fn.now() as unknown as Date })
          .returning('*')
      : [document];
    let creditedToWallet: string | undefined;
    if (settlement.status === 'failed') {
      // No cash went back: nor does the top-up credit the credit note took back.
      if (topUp) await restoreRefundedCredit(trx, refund.invoice_id, creditNote.id);
      else creditedToWallet = await creditRefusedRefund(trx, creditNote, refund, settlement.failureCode);
    }
    await enqueueOutboxEvent(trx, {
      eventType: settlement.status === 'succeeded' ? 'refund.succeeded' : 'refund.failed',
      aggregateType: 'invoice',
      aggregateId: refund.invoice_id,
      dedupeKey: `refund.${settlement.status}:${refund.id}`,
      payload: {
        refundId: refund.id,
        creditNoteId: creditNote.id,
        creditNoteNumber: creditNote.number,
        invoiceId: refund.invoice_id,
        invoiceNumber: credited?.number ?? null,
        customerId: creditNote.customer_id,
        amount: formatMoney(toDecimal(refund.amount), refund.currency),
        currency: refund.currency,
        reason: refund.reason,
        ...(settlement.status === 'failed' ? { failureCode: settlement.failureCode } : {}),
        ...(creditedToWallet ? { creditedToWallet } : {}),
      },
    });
    return { creditNote, refund };
  });
}

/** Whether a credit total's refunds, none still pending, give back all of it (in cash or, refused, as credit). */
async function creditTotalSettledByRefunds(trx: Knex.Transaction, credit: InvoiceRow): Promise<boolean> {
  const refunds = await trx<RefundRow>('refunds').where({ credit_note_id: credit.id });
  if (refunds.some((row) => row.status === 'pending')) return false;
  // Applied in part to an invoice still unpaid: its refunds paid back the rest, but what it takes off is given back
  // only once that invoice is paid (settleCreditTotalsOfPaidInvoice settles it then, or refunds what the charge did
  // not take off). Settled now, that settlement would pass it over and a charge already at the gateway for the whole
  // invoice would keep the credit's share.
  const target = (credit as InvoiceRow & { credited_invoice_id?: string | null }).credited_invoice_id;
  if (target && credit.kind !== CREDIT_NOTE_KIND) {
    const applied = await trx<InvoiceRow>('invoices').where({ id: target }).first();
    if (applied && (applied.status === 'open' || applied.status === 'uncollectible')) return false;
  }
  // What it took off the charge of the invoice it was applied to (if any) was given back too, without a refund.
  const takenOff = await creditTotalTakenOffOwnCharge(trx, credit);
  return sumMoney(refunds.map((row) => toDecimal(row.amount))).plus(takenOff).gte(toDecimal(credit.total).negated());
}

/** What a credit total took off the charge of the unpaid invoice it was applied to (0 when none). */
export async function creditTotalTakenOffOwnCharge(db: Db, credit: InvoiceRow): Promise<Decimal> {
  const target = (credit as InvoiceRow & { credited_invoice_id?: string | null }).credited_invoice_id;
  if (!target || credit.kind === CREDIT_NOTE_KIND) return toDecimal('0');
  const invoice = await db<InvoiceRow>('invoices').where({ id: target }).first();
  return invoice ? ((await creditTotalsAppliedTo(db, invoice)).get(credit.id) ?? toDecimal('0')) : toDecimal('0');
}

/**
 * A refused refund's amount as wallet credit in the note's currency, with an audit record; returns the amount.
 * Effective from the note's issue, no expiry, not scoped: it pays the customer's next usage like any credit.
 */
async function creditRefusedRefund(trx: Knex.Transaction, creditNote: CreditNoteRow, refund: RefundRow, failureCode: string): Promise<string> {
  const amount = formatMoney(toDecimal(refund.amount), refund.currency);
  const { grant } = await createGrant(
    trx,
    {
      customerId: creditNote.customer_id,
      currency: refund.currency,
      // One grant per refund: a credit total refunded from several payments has several (the first keeps the key
      // it always had). Margins recognise these grants by the `credit_note:` prefix.
      grantKey: refund.idempotency_key === refundIdempotencyKey(creditNote.id) ? `credit_note:${creditNote.id}` : `credit_note:${creditNote.id}:${refund.invoice_id}`,
      source: 'goodwill',
      amount,
      effectiveAt: creditNote.finalized_at ?? new Date(),
      description: `credit note ${creditNote.number ?? creditNote.id}: refund refused (${failureCode}), credited instead`,
    },
    trx,
  );
  await writeAudit(trx, {
    actor: 'gateway',
    action: 'invoice.refund_credited_to_wallet',
    subjectType: 'invoice',
    subjectId: refund.invoice_id,
    reason: `refund refused by the gateway (${failureCode}): ${refund.reason}`,
    details: { creditNoteId: creditNote.id, creditNoteNumber: creditNote.number, refundId: refund.id, amount, currency: refund.currency, grantId: grant.id },
  });
  return amount;
}

export async function listCreditNotes(db: Db, invoiceId: string): Promise<Array<{ creditNote: CreditNoteRow; refund: RefundRow | undefined }>> {
  const notes = await db<CreditNoteRow>('invoices').where({ credited_invoice_id: invoiceId, kind: CREDIT_NOTE_KIND }).orderBy('created_at');
  const refunds = await db<RefundRow>('refunds').whereIn('credit_note_id', notes.map((note) => note.id));
  return notes.map((creditNote) => ({ creditNote, refund: refunds.find((refund) => refund.credit_note_id === creditNote.id) }));
}

/** The gateway charge a refund goes back to. */
export async function gatewayChargeIdOf(db: Db, paymentId: string): Promise<string | null> {
  const row: { gateway_charge_id: string | null } | undefined = await db('payments').where({ id: paymentId }).first('gateway_charge_id');
  return row?.gateway_charge_id ?? null;
}

/**
 * Refunds still pending since before `before`, oldest first: the gateway did not answer and nothing sent them again
 * (a refund request's is resumed by its repeat; a payment's, ingestion's or the janitor's has no one to repeat it).
 */
export async function listStalePendingRefunds(db: Db, before: Date, limit: number): Promise<RefundRow[]> {
  return db<RefundRow>('refunds').where({ status: 'pending' }).andWhere('updated_at', '<', before).orderBy([{ column: 'updated_at' }, { column: 'id' }]).limit(limit);
}

export async function findRefund(db: Db, refundId: string): Promise<RefundRow | undefined> {
  return db<RefundRow>('refunds').where({ id: refundId }).first();
}

/** The refund that carries a credit note's money back (each credit note has exactly one). */
export async function findRefundOfCreditNote(db: Db, creditNoteId: string): Promise<RefundRow | undefined> {
  return db<RefundRow>('refunds').where({ credit_note_id: creditNoteId }).first();
}

/**
 * What a credit's refunds gave back, as its document tells it: a credit note has one refund, a credit total
 * refunded across several payments one per payment (store/credit-total-refunds.ts), summed here. Pending while any
 * part is; `failed` when any part was refused (its amount went to the wallet instead).
 */
export async function refundOfCredit(db: Db, creditId: string): Promise<(Pick<RefundRow, 'status' | 'amount'> & { parts: Pick<RefundRow, 'status' | 'amount'>[] }) | undefined> {
  const parts = await db<RefundRow>('refunds').where({ credit_note_id: creditId }).orderBy([{ column: 'created_at' }, { column: 'id' }]).select('status', 'amount');
  if (parts.length === 0) return undefined;
  const status = parts.some((part) => part.status === 'pending') ? 'pending' : parts.some((part) => part.status === 'failed') ? 'failed' : 'succeeded';
  // The parts too: a credit refunded 20.00 to the card and 10.00 to the wallet (refused) is not "refused" as a whole.
  return { status, amount: sumMoney(parts.map((part) => toDecimal(part.amount))).toFixed(), parts };
}

export interface CreditNotesOwedRow {
  id: string;
  number: string | null;
  total: string;
  currency: string;
  /** What its non-void credit notes credit. */
  credited: string;
  /** What of that neither its charge took off nor a refund (or its wallet credit) gave back. */
  owed: string;
}

/**
 * Paid invoices whose credit notes (issued before `before`) credit more than their charge took off and their
 * refunds gave back: notes worth more than the invoice (several reversal notes, the period's usage partly billed by
 * threshold invoices), refunded only as far as the payment went (refundCreditNotesOfPaidInvoice) or, with nothing
 * paid, not at all. Before, that rest was owed to the customer and nobody knew: the notes showed settled. What the
 * janitor reports (`unrefunded_credit`, the invoice as subject). The charge took credit totals applied to the invoice off first
 * (creditTotalsAppliedTo), then the notes; a pending refund counts as given, as does a refused one (wallet credit).
 */
export async function listCreditNotesOwedBeyondRefunds(db: Knex, before: Date, limit: number): Promise<CreditNotesOwedRow[]> {
  const result = await db.raw<{ rows: CreditNotesOwedRow[] }>(
    `SELECT o.id, o.number, o.total, o.currency, o.credited, o.owed FROM (
       SELECT x.id, x.number, x.total, x.currency, x.finalized_at, n.credited,
              n.credited - n.refunded
                - least(n.credited, greatest(0, x.total - coalesce(p.amount, 0)
                    - coalesce((SELECT sum(least(coalesce(c.amount_taken_off, -c.total), greatest(0, x.total - coalesce(p.amount, 0))))
                                  FROM invoices c
                                 WHERE c.credited_invoice_id = x.id AND c.kind <> ? AND c.status <> 'void' AND c.total < 0), 0))) AS owed
         FROM (SELECT note.credited_invoice_id, sum(note.total) AS credited, coalesce(sum(r.amount), 0) AS refunded, max(note.finalized_at) AS last_issued
                 FROM invoices note
                 LEFT JOIN refunds r ON r.credit_note_id = note.id
                WHERE note.kind = ? AND note.status <> 'void'
                GROUP BY note.credited_invoice_id) n
         JOIN invoices x ON x.id = n.credited_invoice_id
         LEFT JOIN payments p ON p.invoice_id = x.id AND p.status = 'succeeded'
        WHERE x.status = 'paid' AND n.last_issued < ?
     ) o
     WHERE o.owed > 0
     ORDER BY o.finalized_at, o.id
     LIMIT ?`,
    [CREDIT_NOTE_KIND, CREDIT_NOTE_KIND, before, limit],
  );
  return result.rows;
}

export async function findCreditNote(db: Db, creditNoteId: string): Promise<CreditNoteRow | undefined> {
  return db<CreditNoteRow>('invoices').where({ id: creditNoteId }).first();
}
