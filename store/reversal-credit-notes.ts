/**
 * A reversal of an invoiced outcome whose subscription has ended (docs/pricing.md "Reversible outcomes"): no later
 * invoice will carry its credit line, so it becomes a credit note against the invoice that billed the outcome.
 *
 * Exactly once: the reversals are locked and marked credited (`credit_note:<key>`) in the credit note's own
 * transaction, the same barrier the next-invoice path uses (store/reversal-credits.ts), so a reversal is credited
 * by an invoice or by a credit note, never both; the credit note's key (the reversal row ids) is its duplicate
 * barrier too (unique credited invoice + idempotency key).
 */
import type Decimal from 'decimal.js';
import type { Knex } from 'knex';
import { formatMoney, sumMoney, toDecimal } from '../domain/money';
import type { DraftInvoiceLine } from '../domain/invoice';
import { findPlan } from './catalog';
import { amountOwedAfterCreditNotes, CREDIT_NOTE_KIND, enqueueCreditNoteIssued, insertCreditNote, refundableBalance, refundCreditNotesOfPaidInvoice, type CreditNoteRow, type RefundRow } from './credit-notes';
import type { InvoiceRow } from './invoices';
import { writeAudit } from './outbox';
import type { PlanRow } from './catalog';
import { reversalCreditsFor, type SettleUnpaidInvoice, type UsageBilledHere } from './reversal-credits';
import { invoicedReversals } from './reversals';

/**
 * Subscriptions that bill nothing more: canceled ones, and ones whose closing invoice exists (the workflow marks the
 * subscription canceled right after its first charge). A reversal stored after the closing invoice's transaction
 * cannot wait for a next invoice.
 */
export const ENDED_STATUSES = ['canceled'] as const;

/** No invoice to credit yet: the transaction rolls back, the reversals stay owed for the next pass. */
class CreditNotYetPossible extends Error {
  override name = 'CreditNotYetPossible';
}

export interface IssuedReversalCreditNote {
  readonly creditNote: CreditNoteRow;
  /** A pending refund of it (all of it, or what the payment still covers), when the credited invoice was paid. */
  readonly refund?: RefundRow;
}

/**
 * Issues the credit notes owed for reversals of these customers' outcomes on ended subscriptions. Called right
 * after reversals are stored; a second call finds them credited and issues nothing.
 */
export async function creditReversalsOfEndedSubscriptions(db: Knex, customerIds: readonly string[]): Promise<IssuedReversalCreditNote[]> {
  if (customerIds.length === 0) return [];
  return creditEach(db, await endedWithOwedReversals(db, { customerIds }));
}

/**
 * Ended subscriptions with reversals stored before `receivedBefore` that no credit note carries yet: what the
 * janitor repairs when the pass right after ingestion did not happen (the API died) or failed.
 */
export async function listOwedReversalCredits(db: Knex, receivedBefore: Date, limit: number): Promise<{ id: string; customer_id: string }[]> {
  return (await endedWithOwedReversals(db, { receivedBefore, limit })).map(({ id, customer_id }) => ({ id, customer_id }));
}

/** The credit notes owed by one ended subscription (the janitor's repair); nothing when none is owed. */
export async function creditReversalsOfSubscription(db: Knex, subscriptionId: string): Promise<IssuedReversalCreditNote[]> {
  return creditEach(db, await endedWithOwedReversals(db, { subscriptionId }));
}

interface EndedSubscription {
  id: string;
  customer_id: string;
  plan_id: string;
}

async function endedWithOwedReversals(
  db: Knex,
  scope: { customerIds?: readonly string[]; subscriptionId?: string; receivedBefore?: Date; limit?: number },
): Promise<EndedSubscription[]> {
  const query = db('subscriptions as s')
    .where((ended) =>
      ended
        .whereIn('s.status', [...ENDED_STATUSES])
        .orWhereExists(db('invoices as closing').whereRaw('closing.subscription_id = s.id').andWhere('closing.kind', 'closing').whereNot('closing.status', 'void').select(db.raw('1'))),
    )
    .whereExists(
      db('usage_events as r')
        .join('usage_events as o', (join) => join.on('o.customer_id', 'r.customer_id').andOn('o.event_id', 'r.reverses_event_id'))
        .join('usage_period_closures as c', 'c.id', 'o.period_close_id')
        .whereRaw('c.subscription_id = s.id AND r.customer_id = s.customer_id AND r.reversal_credited_on IS NULL AND r.received_at > c.closed_at')
        .modify((owed) => {
          if (scope.receivedBefore) owed.andWhere('r.received_at', '<', scope.receivedBefore);
        })
        .select(db.raw('1')),
    )
    .select('s.id', 's.customer_id', 's.plan_id');
  if (scope.customerIds) query.whereIn('s.customer_id', [...new Set(scope.customerIds)]);
  if (scope.subscriptionId) query.where('s.id', scope.subscriptionId);
  if (scope.limit) query.orderBy('s.id').limit(scope.limit);
  return query;
}

async function creditEach(db: Knex, subscriptions: readonly EndedSubscription[]): Promise<IssuedReversalCreditNote[]> {
  const issued: IssuedReversalCreditNote[] = [];
  for (const subscription of subscriptions) {
    try {
      issued.push(...(await db.transaction((trx) => creditOne(trx, subscription))));
    } catch (error) {
      if (!(error instanceof CreditNotYetPossible)) throw error;
    }
  }
  return issued;
}

async function creditOne(trx: Knex.Transaction, subscription: EndedSubscription): Promise<IssuedReversalCreditNote[]> {
  // Locks the reversals; ones another transaction credited meanwhile come back credited.
  const pending = (await invoicedReversals(trx, subscription.id, subscription.customer_id)).filter((reversal) => !reversal.credited);
  if (pending.length === 0) return [];
  const key = `reversal:${pending.map((reversal) => reversal.reversalRowId).sort().join('.')}`;
  // What an unpaid invoice of the period still owes for its usage is settled first, as for a subscription going on.
  const issued: IssuedReversalCreditNote[] = [];
  const lines = await reversalCreditsFor(trx, subscription.id, subscription.customer_id, `credit_note:${key}`, await findPlan(trx, subscription.plan_id), undefined, settleOnUnpaidInvoice(trx, issued));

  // One credit note per period whose outcomes were reversed, against the invoice that billed that period's usage.
  for (const [periodStart, periodLines] of linesByPeriod(lines)) {
    const amount = sumMoney(periodLines.map((line) => toDecimal(line.amount))).negated();
    if (!amount.isPositive()) continue; // the included credit had paid for it: nothing to give back
    const credited = await invoiceThatBilled(trx, subscription.id, new Date(periodStart), amount);
    // Rolls the marks back: the reversals stay owed, for the next pass, rather than credited by nothing.
    if (!credited) throw new CreditNotYetPossible(`no invoice of subscription ${subscription.id} billed the usage of ${periodStart}`);
    issued.push(await insertReversalCreditNote(trx, credited, periodLines, formatMoney(amount, credited.currency), `${key}:${periodStart}`, ENDED_REASON));
  }
  return issued;
}

const ENDED_REASON = 'outcomes reversed after the subscription ended';
const UNPAID_REASON = 'outcomes reversed while the invoice that billed them is unpaid';

/**
 * The reversal credit lines of the subscription's next invoice that bills usage (reversalCreditsFor), in its
 * transaction, after what the unpaid invoice of each period (in dunning, or uncollectible) still owes is settled:
 * that much of the period's credit becomes a credit note against it, which takes it off what it owes (its charge asks
 * for that much less; paid meanwhile, the note is refunded from its payment, the refund left pending for the janitor
 * to send), and only the rest is credited on the next invoice and given back to the wallet, as a credit of a paid
 * invoice is. Credited whole on the next invoice, the credit gave back outcomes never paid for. The reversals are
 * marked credited by the invoice (`creditedOn`), the note included.
 */
export async function reversalCreditsOfNextInvoice(
  trx: Knex.Transaction,
  subscriptionId: string,
  customerId: string,
  creditedOn: string,
  fallbackPlan: PlanRow,
  billedHere?: UsageBilledHere,
): Promise<DraftInvoiceLine[]> {
  return reversalCreditsFor(trx, subscriptionId, customerId, creditedOn, fallbackPlan, billedHere, settleOnUnpaidInvoice(trx, []));
}

/** The part of a period's reversal credit its unpaid invoice takes (splitOffUnpaid): a credit note against it. */
function settleOnUnpaidInvoice(trx: Knex.Transaction, issued: IssuedReversalCreditNote[]): SettleUnpaidInvoice {
  return async ({ invoice, creditLines, amount }, reversals) => {
    // Its own key: after the end, the rest of the credit may be a second note against the same invoice.
    const key = `reversal:${reversals.filter((reversal) => !reversal.credited).map((reversal) => reversal.reversalRowId).sort().join('.')}:unpaid`;
    issued.push(await insertReversalCreditNote(trx, invoice, creditLines, amount, `${key}:${creditLines[0].periodStart}`, UNPAID_REASON));
  };
}

function linesByPeriod(lines: readonly DraftInvoiceLine[]): Map<string, DraftInvoiceLine[]> {
  const byPeriod = new Map<string, DraftInvoiceLine[]>();
  for (const line of lines) byPeriod.set(line.periodStart, [...(byPeriod.get(line.periodStart) ?? []), line]);
  return byPeriod;
}

/**
 * The finalized invoice the period's credit note goes against, and is refunded from (or taken off the charge of). The
 * invoices that billed the period's usage: the one that billed it as a whole (the next period invoice, the closing
 * invoice or the proration invoice of a plan change, as the wallet's give-back picks it: store/wallet-draws.ts
 * invoiceBillingUsagePeriod), then the ones that billed part of it (threshold invoices, re-ratings' adjustments),
 * newest first. The first that can give all of `amount` back; else the one that can give the most (the note is
 * refunded in part, the rest reported by the janitor). Before, it was the newest invoice with usage lines of the
 * period: a later adjustment, whose payment covered only the late events it billed (2.00 of a 5.00 note refunded),
 * and after threshold invoices had billed the period, a closing invoice that took no payment (nothing refunded).
 */
async function invoiceThatBilled(trx: Knex.Transaction, subscriptionId: string, periodStart: Date, amount: Decimal): Promise<InvoiceRow | undefined> {
  const candidates: InvoiceRow[] = await trx<InvoiceRow>('invoices as i')
    .where('i.subscription_id', subscriptionId)
    .whereNot('i.kind', CREDIT_NOTE_KIND)
    .whereNot('i.status', 'void') // a finalized invoice is 'draft' until numbered just after its commit
    .whereExists(trx('invoice_lines as l').whereRaw('l.invoice_id = i.id').andWhere('l.kind', 'usage').andWhere('l.period_start', periodStart).select(trx.raw('1')))
    .orderByRaw("(i.kind IN ('period', 'closing', 'proration')) DESC, i.created_at DESC, i.id DESC")
    .select('i.*');
  let best: { invoice: InvoiceRow; capacity: Decimal } | undefined;
  for (const invoice of candidates) {
    const capacity = await creditCapacity(trx, invoice);
    if (capacity.gte(amount)) return invoice;
    if (!best || capacity.gt(best.capacity)) best = { invoice, capacity };
  }
  return best?.invoice;
}

/**
 * What a credit note against the invoice can give back: a paid invoice's payment, less what was refunded or credited
 * of it; an unpaid one's charge, less the credit already taken off it. Read without the invoice's lock (the note
 * takes it): a refund meanwhile only makes the note's refund partial, as it would have been.
 */
async function creditCapacity(trx: Knex.Transaction, invoice: InvoiceRow): Promise<Decimal> {
  if (invoice.status === 'paid') return (await refundableBalance(trx, invoice.id)).remaining;
  return amountOwedAfterCreditNotes(trx, invoice);
}

async function insertReversalCreditNote(trx: Knex.Transaction, billed: InvoiceRow, lines: readonly DraftInvoiceLine[], amount: string, idempotencyKey: string, reason: string): Promise<IssuedReversalCreditNote> {
  // The invoice's row lock, as a refund request and a payment take it: a refund requested meanwhile sees this note
  // (without it both were refunded in full, more than was paid), and a payment sees it to refund it (below).
  const invoice = (await trx<InvoiceRow>('invoices').where({ id: billed.id }).forUpdate().first())!;
  const creditNote = await insertCreditNote(trx, invoice, { total: amount, idempotencyKey, reason });
  const number = creditNote.number;
  // Credit notes carry positive amounts; each line keeps the original's period, so margins subtract it there.
  await trx('invoice_lines').insert(
    lines.map((line, position) => ({
      invoice_id: creditNote.id,
      position,
      kind: 'reversal_credit',
      description: line.description,
      metric_code: line.metricCode,
      quantity: line.quantity,
      amount: toDecimal(line.amount).negated().toFixed(),
      period_start: new Date(line.periodStart),
      period_end: new Date(line.periodEnd),
      breakdown: JSON.stringify(line.breakdown),
    })),
  );
  // Paid: refunded, in part when the payment covers less (other notes took it, or threshold invoices billed part of
  // the period). Unpaid: refunded once its invoice is paid (activities/payments.ts).
  const refund = invoice.status === 'paid' ? (await refundCreditNotesOfPaidInvoice(trx, invoice)).find((row) => row.credit_note_id === creditNote.id) : undefined;
  await writeAudit(trx, {
    actor: 'ingestion',
    action: 'invoice.reversal_credited',
    subjectType: 'invoice',
    subjectId: invoice.id,
    reason,
    details: { creditNoteId: creditNote.id, creditNoteNumber: number, amount, currency: invoice.currency, refundId: refund?.id ?? null, refundAmount: refund?.amount ?? null },
  });
  await enqueueCreditNoteIssued(trx, creditNote, invoice, amount);
  return { creditNote, ...(refund ? { refund } : {}) };
}

/** Whether an ended subscription still owes credit notes for reversals (after a repair that could not issue them). */
export async function owesReversalCredits(db: Knex, subscriptionId: string): Promise<boolean> {
  return (await endedWithOwedReversals(db, { subscriptionId })).length > 0;
}
