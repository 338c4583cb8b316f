/** Manual re-rating requests as stored (table `rerates`, migration 0019). */
import type { Knex } from 'knex';
import type { DraftInvoiceLine, PeriodBounds } from '../domain/invoice';
import type { RerateStatus } from '../domain/rerating';

type Db = Knex | Knex.Transaction;

/** The row's statuses (domain/rerating.ts RERATE_STATUSES). */
export type { RerateStatus };

export interface RerateProposal {
  readonly usagePeriod: PeriodBounds;
  readonly planId: string;
  readonly lines: DraftInvoiceLine[];
  readonly total: string;
  readonly outcome: 'adjustment' | 'credit' | 'none';
  /** Late events this proposal bills: exactly these are claimed when it is carried out. */
  readonly lateEventIds: string[];
  /**
   * A credit on an invoice the wallet paid: how much of it goes back to the wallet's grants (the rest is refunded
   * by the credit note), and the invoice's draw it goes back to (docs/wallets.md). Absent: no wallet credit back.
   */
  readonly walletCreditBack?: string;
  readonly walletDrawKey?: string;
  /**
   * The invoice's re-ratings already carried out when this proposal was computed (part of its "already invoiced").
   * Another one carried out since makes the proposal stale. Absent on proposals stored before it was recorded:
   * such a proposal is refused as stale when any other re-rating of its invoice was carried out, before it or
   * after (it cannot say which it saw; nothing is written, and finance asks again).
   */
  readonly buildsOn?: string[];
  /**
   * Set when the proposal rates at another plan than the one the period's reversal credits are priced at (the
   * closure's, or the last carried-out re-rating's), or bills late events: the period's reversals credited when it
   * was computed. A reversal credited since was priced at that other plan, against the usage without those late
   * events, while the proposal counted it at its own (or rated its outcome as standing): carrying it out would
   * bill or credit the difference, so the proposal is stale.
   */
  readonly reversalsCredited?: string[];
  /**
   * Later invoices of the subscription whose seats this proposal's late seat changes move (the level holds into every
   * later period; one closed before a change arrived billed without it), each with what a re-rating of that invoice
   * proposes now. Carrying this out claims the changes, so they are pending nowhere else: finance re-rates those
   * invoices too. Absent when the proposal bills no late events.
   */
  readonly laterInvoicesChanged?: LaterInvoiceChanged[];
}

export interface LaterInvoiceChanged {
  readonly invoiceId: string;
  readonly usagePeriod: PeriodBounds;
  readonly total: string;
  readonly outcome: 'adjustment' | 'credit';
}

export interface RerateRow {
  id: string;
  invoice_id: string;
  subscription_id: string;
  customer_id: string;
  status: RerateStatus;
  requested_by: string;
  reason: string;
  corrected_plan_id: string | null;
  include_late_usage: boolean;
  proposal: RerateProposal | null;
  decided_by: string | null;
  decision_reason: string | null;
  result_invoice_id: string | null;
  decided_at: Date | null;
  /** Set exactly when `status` is `failed` (migration 0830): the deterministic failure that ended its workflow. */
  failure_code: string | null;
  failure_message: string | null;
}


/** A re-rating row locked for the rest of the transaction: one step of its workflow at a time. */
export async function lockRerate(trx: Knex.Transaction, rerateId: string): Promise<RerateRow | undefined> {
  return trx<RerateRow>('rerates').where({ id: rerateId }).forUpdate().first();
}

export async function findRerate(db: Db, rerateId: string): Promise<RerateRow | undefined> {
  return db<RerateRow>('rerates').where({ id: rerateId }).first();
}

/** Re-ratings of an invoice already carried out, except one: corrections the next proposal builds on. */
export async function listFinalizedRerates(db: Db, invoiceId: string, exceptRerateId?: string): Promise<RerateRow[]> {
  const query = db<RerateRow>('rerates').where({ invoice_id: invoiceId, status: 'finalized' });
  return exceptRerateId === undefined ? query : query.whereNot({ id: exceptRerateId });
}

/**
 * The period's last carried-out re-rating (of any invoice of the subscription billing that usage period): its plan
 * is what the period's outcomes are billed at now. Re-ratings of one invoice are carried out one at a time, each
 * building on all the ones before it, so the last is the one building on the most.
 */
export async function lastFinalizedRerateOfClosure(db: Db, closeId: string): Promise<RerateRow | undefined> {
  return db<RerateRow>('rerates as r')
    .join('usage_period_closures as c', 'c.subscription_id', 'r.subscription_id')
    .where('c.id', closeId)
    .andWhere('r.status', 'finalized')
    .andWhereRaw("(r.proposal -> 'usagePeriod' ->> 'start')::timestamptz = c.period_start")
    .orderByRaw("jsonb_array_length(coalesce(r.proposal -> 'buildsOn', '[]'::jsonb)) DESC, r.decided_at DESC NULLS LAST, r.id")
    .first('r.*');
}

/**
 * The finalized invoices of a subscription that billed the usage of a period closed from `from` on with a seat-like
 * metric (one its close kept a level of): the periods a late seat change before `from` reaches through their
 * opening level. Period order; one invoice per period (the one that billed it, not its adjustments).
 */
export async function laterSeatInvoices(db: Db, subscriptionId: string, from: Date, invoiceKinds: readonly string[]): Promise<string[]> {
  const result = await db.raw<{ rows: { invoice_id: string }[] }>(
    `SELECT DISTINCT ON (c.period_start) i.id AS invoice_id
     FROM usage_period_closures c
     JOIN invoice_lines l ON l.period_start = c.period_start AND l.kind = 'usage'
     JOIN invoices i ON i.id = l.invoice_id AND i.subscription_id = c.subscription_id
     WHERE c.subscription_id = ? AND c.period_start >= ? AND i.kind = ANY(?::text[]) AND i.status <> 'draft'
       AND EXISTS (SELECT 1 FROM jsonb_each(c.totals) metric WHERE metric.value -> 'closingLevel' IS NOT NULL)
     ORDER BY c.period_start, i.created_at, i.id`,
    [subscriptionId, from, [...invoiceKinds]],
  );
  return result.rows.map((row) => row.invoice_id);
}

/**
 * The paid invoices that billed part of a usage period besides the invoice that billed it as a whole: its threshold
 * invoices and earlier re-ratings' adjustments (usage lines of the period), newest first. A re-rating's credit is
 * refunded from them when that invoice's payment holds less than the credit.
 */
export async function paidPartialInvoicesOfPeriod(db: Db, subscriptionId: string, periodStart: Date): Promise<string[]> {
  const rows = await db('invoices as i')
    .where('i.subscription_id', subscriptionId)
    .whereIn('i.kind', ['threshold', 'adjustment'])
    .andWhere('i.status', 'paid')
    .whereExists(db('invoice_lines as l').whereRaw('l.invoice_id = i.id').andWhere('l.kind', 'usage').andWhere('l.period_start', periodStart).select(db.raw('1')))
    .orderBy([{ column: 'i.created_at', order: 'desc' }, { column: 'i.id', order: 'desc' }])
    .select<{ id: string }[]>('i.id');
  return rows.map((row) => row.id);
}

/**
 * The adjustments (re-ratings', late usage's) of a usage period still unpaid (open, or uncollectible: never collected
 * either), newest first: a re-rating's credit of the period takes off what they owe before anything is refunded
 * (activities/rerate-refund.ts creditUnpaidAdjustments).
 */
export async function unpaidAdjustmentsOfPeriod(db: Db, subscriptionId: string, periodStart: Date): Promise<string[]> {
  const rows = await db('invoices as i')
    .where({ 'i.subscription_id': subscriptionId, 'i.kind': 'adjustment' })
    .whereIn('i.status', ['open', 'uncollectible'])
    .whereExists(db('invoice_lines as l').whereRaw('l.invoice_id = i.id').andWhere('l.period_start', periodStart).select(db.raw('1')))
    .orderBy([{ column: 'i.created_at', order: 'desc' }, { column: 'i.id', order: 'desc' }])
    .select<{ id: string }[]>('i.id');
  return rows.map((row) => row.id);
}

/** A credit note a re-rating issued, with its refund (none for one taken off an unpaid invoice) and its invoice's status. */
export interface RerateCreditNoteRow {
  credit_note_id: string;
  credit_note_number: string | null;
  credit_note_status: string;
  credited_invoice_id: string;
  credited_invoice_status: string;
  amount: string;
  currency: string;
  refund_id: string | null;
  refund_status: 'pending' | 'succeeded' | 'failed' | null;
  refund_amount: string | null;
  refund_failure_code: string | null;
}

/**
 * Every credit note a re-rating issued, in the order it issued them: each is keyed `rerate:<id>` on the invoice it
 * credits (activities/rerate-refund.ts), the re-rated invoice's or a threshold invoice's or adjustment's of its period.
 */
export async function listRerateCreditNotes(db: Db, rerate: Pick<RerateRow, 'id' | 'subscription_id'>): Promise<RerateCreditNoteRow[]> {
  return db('invoices as note')
    .join('invoices as credited', 'credited.id', 'note.credited_invoice_id')
    .leftJoin('refunds as r', 'r.credit_note_id', 'note.id')
    .where({ 'note.subscription_id': rerate.subscription_id, 'note.kind': 'credit_note', 'note.idempotency_key': `rerate:${rerate.id}` })
    .orderBy([{ column: 'note.finalized_at' }, { column: 'note.id' }])
    .select<RerateCreditNoteRow[]>(
      'note.id as credit_note_id',
      'note.number as credit_note_number',
      'note.status as credit_note_status',
      'note.credited_invoice_id',
      'credited.status as credited_invoice_status',
      'note.total as amount',
      'note.currency',
      'r.id as refund_id',
      'r.status as refund_status',
      'r.amount as refund_amount',
      'r.failure_code as refund_failure_code',
    );
}

export interface NewRerate {
  readonly id: string;
  readonly invoiceId: string;
  readonly subscriptionId: string;
  readonly customerId: string;
  readonly requestedBy: string;
  readonly reason: string;
  readonly correctedPlanId: string | null;
  readonly includeLateUsage: boolean;
}

/** Records a finance request to re-rate an invoice; its workflow starts computing the proposal. */
export async function insertRerate(trx: Knex.Transaction, rerate: NewRerate): Promise<RerateRow> {
  const [inserted] = await trx<RerateRow>('rerates')
    .insert({
      id: rerate.id,
      invoice_id: rerate.invoiceId,
      subscription_id: rerate.subscriptionId,
      customer_id: rerate.customerId,
      status: 'computing',
      requested_by: rerate.requestedBy,
      reason: rerate.reason,
      corrected_plan_id: rerate.correctedPlanId,
      include_late_usage: rerate.includeLateUsage,
    })
    .returning('*');
  return inserted;
}

/** Removes a re-rating whose workflow never started (still computing, no proposal); false if it moved on. */
export async function deleteUnstartedRerate(db: Knex, rerateId: string): Promise<boolean> {
  return (await db('rerates').where({ id: rerateId, status: 'computing' }).whereNull('proposal').delete()) > 0;
}

/** Stores the computed proposal and the status it leads to (proposed, or nothing_to_do). */
export async function recordRerateProposal(trx: Knex.Transaction, rerateId: string, status: RerateStatus, proposal: RerateProposal): Promise<RerateRow> {
  const [updated] = await trx<RerateRow>('rerates').where({ id: rerateId }).update({ status, proposal: JSON.stringify(proposal) as never }).returning('*');
  return updated;
}

export interface RerateDecision {
  readonly status: RerateStatus;
  readonly by: string;
  readonly reason: string;
  readonly at: Date;
}

/** Stores finance's decision (approved, rejected) or the expiry of the decision window. */
export async function recordRerateDecision(trx: Knex.Transaction, rerateId: string, decision: RerateDecision): Promise<RerateRow> {
  const [updated] = await trx<RerateRow>('rerates')
    .where({ id: rerateId })
    .update({ status: decision.status, decided_by: decision.by, decision_reason: decision.reason, decided_at: decision.at })
    .returning('*');
  return updated;
}

/** The proposal was carried out: `resultInvoiceId` is the adjustment invoice or the credit note. */
export async function markRerateFinalized(trx: Knex.Transaction, rerateId: string, resultInvoiceId: string | null): Promise<RerateRow> {
  const [updated] = await trx<RerateRow>('rerates').where({ id: rerateId }).update({ status: 'finalized', result_invoice_id: resultInvoiceId }).returning('*');
  return updated;
}

/**
 * The statuses a workflow's deterministic failure can end: the correction is not carried out yet. A finalized
 * re-rating stays finalized when collecting its adjustment or refunding its credit note fails afterwards: the
 * correction exists, and that invoice's collection is followed as any invoice's is.
 */
const FAILABLE_STATUSES: readonly RerateStatus[] = ['computing', 'proposed', 'approved'];

export interface RerateFailure {
  readonly code: string;
  readonly message: string;
}

/** Ends a re-rating not carried out yet as `failed`, with why; undefined when it had already ended (left as it is). */
export async function markRerateFailed(trx: Knex.Transaction, rerateId: string, failure: RerateFailure): Promise<RerateRow | undefined> {
  const [updated] = await trx<RerateRow>('rerates')
    .where({ id: rerateId })
    .whereIn('status', FAILABLE_STATUSES)
    .update({ status: 'failed', failure_code: failure.code, failure_message: failure.message })
    .returning('*');
  return updated;
}

/** A re-rating the janitor lists (activities/janitor.ts): one not carried out that nothing replaced. */
export interface RerateNotCarriedOutRow {
  id: string;
  invoice_id: string;
  status: RerateStatus;
  failure_code: string | null;
  failure_message: string | null;
  created_at: Date;
}

/**
 * Re-ratings not carried out that no later re-rating of their invoice replaced, oldest first: the `failed` ones, and
 * those requested before `before` still in a step (computing, proposed, approved), whose workflow the caller looks up
 * (terminated by ops, failed before failures were recorded on the row, or never started: the row says so for good).
 * Finance asking for a new re-rating of the invoice is what settles them: a failed one holds nothing back.
 */
export async function listReratesNotCarriedOut(db: Db, before: Date, limit: number): Promise<RerateNotCarriedOutRow[]> {
  return db<RerateNotCarriedOutRow>('rerates as r')
    .where((query) => query.where('r.status', 'failed').orWhere((inStep) => inStep.whereIn('r.status', FAILABLE_STATUSES).andWhere('r.created_at', '<', before)))
    .whereNotExists(db('rerates as later').whereRaw('later.invoice_id = r.invoice_id').andWhereRaw('later.created_at > r.created_at').select(db.raw('1')))
    .orderBy([{ column: 'r.created_at' }, { column: 'r.id' }])
    .limit(limit)
    .select('r.id', 'r.invoice_id', 'r.status', 'r.failure_code', 'r.failure_message', 'r.created_at');
}
