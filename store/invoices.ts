import type { Knex } from 'knex';
import { DraftInvoiceLine, invoiceTotal, type PeriodBounds } from '../domain/invoice';
import { NumberingRun, NumberingRuns } from './numbering-runs';
import { queryPrepared } from './prepared-statements';

type Db = Knex | Knex.Transaction;

export interface InvoiceRow {
  id: string;
  number: string | null;
  customer_id: string;
  subscription_id: string | null;
  kind: string;
  status: 'draft' | 'open' | 'paid' | 'uncollectible' | 'void';
  currency: string;
  period_start: Date;
  period_end: Date;
  total: string;
  finalized_at: Date | null;
  paid_at: Date | null;
  created_at: Date;
  /** Set when the content is final; the number follows in the numbering step (migration 0410). */
  finalization_seq?: string | null;
  /**
   * A credit total taken off an unpaid invoice in part (migration 0840): how much of it; null when all of it, or when
   * it is not taken off any (store/credit-notes.ts partTakenOff).
   */
  amount_taken_off?: string | null;
}

export interface InvoiceLineRow {
  id: string;
  invoice_id: string;
  position: number;
  kind: string;
  description: string;
  metric_code: string | null;
  quantity: string;
  amount: string;
  period_start: Date;
  period_end: Date;
  breakdown: Record<string, unknown>;
}

/**
 * Every column of `invoices`, for the prepared statements that return a whole row: a prepared `RETURNING *` would
 * fail once a migration adds a column (store/prepared-statements.ts). test/integration/invoice-prepared-statements.test.ts
 * fails when a migration adds one and this list misses it.
 */
export const INVOICE_COLUMNS = [
  'id', 'number', 'customer_id', 'subscription_id', 'kind', 'status', 'currency', 'period_start', 'period_end', 'total',
  'finalized_at', 'paid_at', 'created_at', 'credited_invoice_id', 'idempotency_key', 'reason', 'finalization_seq',
  'finalized_event', 'threshold_index', 'threshold_amount', 'amount_taken_off',
] as const;

const RETURNING_INVOICE = `RETURNING ${INVOICE_COLUMNS.join(', ')}`;

/**
 * The next number of a gap-free series. Runs in the finalizing transaction: the counter row stays locked
 * until commit, and a rollback returns the number, so numbers are consecutive with no holes.
 */
export async function nextInvoiceNumber(trx: Knex.Transaction, series: string): Promise<string> {
  const result = await trx.raw<{ rows: { last_number: string }[] }>(
    `INSERT INTO invoice_number_sequences (series, last_number) VALUES (?, 1)
     ON CONFLICT (series) DO UPDATE SET last_number = invoice_number_sequences.last_number + 1
     RETURNING last_number`,
    [series],
  );
  return `${series}-${result.rows[0].last_number.padStart(6, '0')}`;
}

export interface NewInvoice {
  readonly customerId: string;
  readonly subscriptionId: string;
  readonly kind: string;
  readonly currency: string;
  readonly periodStart: string;
  readonly periodEnd: string;
}

/**
 * Inserts a draft invoice unless one exists for (subscription, period start, kind).
 * Returns the new row, or null when the unique constraint says it was already done.
 */
export async function insertDraftInvoice(trx: Knex.Transaction, invoice: NewInvoice): Promise<InvoiceRow | null> {
  // The arbiter is the partial unique index invoices_one_per_period (migration 0017), named by its predicate.
  // Prepared: every period invoice in the system starts here.
  const [row] = await queryPrepared<InvoiceRow>(
    trx,
    'invoice-insert-draft',
    `INSERT INTO invoices (customer_id, subscription_id, kind, status, currency, period_start, period_end)
     VALUES ($1, $2, $3, 'draft', $4, $5, $6)
     ON CONFLICT (subscription_id, period_start, kind) WHERE kind IN ('period', 'closing', 'proration') DO NOTHING
     ${RETURNING_INVOICE}`,
    [invoice.customerId, invoice.subscriptionId, invoice.kind, invoice.currency, new Date(invoice.periodStart), new Date(invoice.periodEnd)],
  );
  return row ?? null;
}

export async function findPeriodInvoice(
  db: Knex | Knex.Transaction,
  subscriptionId: string,
  periodStart: string,
  kind: string,
): Promise<InvoiceRow | undefined> {
  return db<InvoiceRow>('invoices')
    .where({ subscription_id: subscriptionId, period_start: new Date(periodStart), kind })
    .first();
}

/** An invoice line's columns (without its invoice): instants as ISO strings, read by Postgres exactly as `new Date` reads them. */
function lineColumns(line: DraftInvoiceLine, position: number) {
  return {
    position,
    kind: line.kind,
    description: line.description,
    metric_code: line.metricCode,
    quantity: line.quantity,
    amount: line.amount,
    period_start: new Date(line.periodStart).toISOString(),
    period_end: new Date(line.periodEnd).toISOString(),
    breakdown: line.breakdown,
  };
}

export async function insertInvoiceLines(
  trx: Knex.Transaction,
  invoiceId: string,
  lines: readonly DraftInvoiceLine[],
): Promise<void> {
  if (lines.length === 0) return;
  await trx('invoice_lines').insert(lines.map((line, position) => ({ invoice_id: invoiceId, ...lineColumns(line, position), breakdown: JSON.stringify(line.breakdown) })));
}

export async function findInvoice(db: Knex | Knex.Transaction, invoiceId: string): Promise<InvoiceRow | undefined> {
  return db<InvoiceRow>('invoices').where({ id: invoiceId }).first();
}

/** The invoice row locked for the rest of the transaction (what credits it takes turns: refunds, re-ratings). */
export async function lockInvoice(trx: Knex.Transaction, invoiceId: string): Promise<InvoiceRow | undefined> {
  return trx<InvoiceRow>('invoices').where({ id: invoiceId }).forUpdate().first();
}

export async function listInvoiceLines(db: Knex | Knex.Transaction, invoiceId: string): Promise<InvoiceLineRow[]> {
  return db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoiceId }).orderBy('position');
}

/** An invoice's lines as the domain reads them (domain/invoice.ts DraftInvoiceLine), in their order. */
export async function invoiceLinesAsDrafts(db: Knex | Knex.Transaction, invoiceId: string): Promise<DraftInvoiceLine[]> {
  return (await listInvoiceLines(db, invoiceId)).map((row) => ({
    kind: row.kind as DraftInvoiceLine['kind'],
    description: row.description,
    metricCode: row.metric_code,
    quantity: String(row.quantity),
    amount: String(row.amount),
    periodStart: new Date(row.period_start).toISOString(),
    periodEnd: new Date(row.period_end).toISOString(),
    breakdown: row.breakdown ?? {},
  }));
}

/** The series every subscription invoice (period, closing, proration, adjustment) is numbered in. */
export const INVOICE_SERIES = 'INV';

/**
 * Finalizes a draft in the caller's transaction: writes its lines, sets the total (the sum of the rounded lines)
 * and takes a place in the numbering queue (`finalization_seq`). After this the invoice's content is never
 * edited. It has no number yet and stays `draft` (not chargeable, not sent, shown as not issued) until
 * `numberFinalizedInvoices` runs after the commit: that step sets the number, status `open` and `finalized_at`
 * and queues `invoice.finalized` with the number. `eventDetails` are added to that event's payload (a re-rating
 * names itself). No lock shared with other invoices is held here: see docs/scaling.md.
 */
export async function finalizeInvoice(
  trx: Knex.Transaction,
  draft: InvoiceRow,
  lines: readonly DraftInvoiceLine[],
  eventDetails: Record<string, unknown> = {},
): Promise<InvoiceRow> {
  const total = invoiceTotal(lines, draft.currency);
  const event = { invoiceId: draft.id, kind: draft.kind, total, currency: draft.currency, customerId: draft.customer_id, ...eventDetails };
  // Lines and the invoice in one prepared statement (one round trip, parsed and planned once per connection, no
  // query builder): this runs once per invoice in the system.
  const rows = lines.map(lineColumns);
  const [finalized] = await queryPrepared<InvoiceRow>(
    trx,
    'invoice-finalize',
    `WITH new_lines AS (
       INSERT INTO invoice_lines (invoice_id, position, kind, description, metric_code, quantity, amount, period_start, period_end, breakdown)
       SELECT $1, line.position, line.kind, line.description, line.metric_code, line.quantity, line.amount, line.period_start, line.period_end, line.breakdown
         FROM jsonb_to_recordset($2::jsonb) AS line(position integer, kind text, description text, metric_code text, quantity numeric,
                                                   amount numeric, period_start timestamptz, period_end timestamptz, breakdown jsonb)
     )
     UPDATE invoices SET total = $3, finalization_seq = nextval('invoice_finalization_seq'), finalized_event = $4::jsonb
      WHERE id = $1
      ${RETURNING_INVOICE}`,
    [draft.id, JSON.stringify(rows), total, JSON.stringify(event)],
  );
  return finalized;
}

/** Finalized (content frozen, in the numbering queue) but not numbered yet: not an issued invoice. */
export function isAwaitingNumber(invoice: InvoiceRow): boolean {
  return invoice.number === null && invoice.finalization_seq !== null && invoice.finalization_seq !== undefined;
}

/** Most invoices one numbering transaction issues; the rest go to the next one (the run loops). */
const NUMBERING_BATCH = 1_000;

/**
 * One numbering run: calls the numbering step (migration 0600: lock, read the queue, move the counter, number,
 * queue the events, one short transaction per call) until the queue is empty, and keeps what it numbered.
 */
async function runNumbering(db: Knex): Promise<NumberingRun> {
  const issued = new Map<string, { number: string; finalizedAt: Date }>();
  let numbered = 0;
  for (;;) {
    const rows = await queryPrepared<{ issued_id: string; issued_number: string; issued_at: Date }>(
      db,
      'invoice-numbering-run',
      'SELECT issued_id, issued_number, issued_at FROM issue_finalized_invoices($1, $2)',
      [INVOICE_SERIES, NUMBERING_BATCH],
    );
    for (const row of rows) issued.set(row.issued_id, { number: row.issued_number, finalizedAt: row.issued_at });
    numbered += rows.length;
    if (rows.length < NUMBERING_BATCH) return { numbered, issued };
  }
}

/** This process's numbering runs, per database (a test may hold several). */
const numberingRuns = new WeakMap<Knex, NumberingRuns>();

function numberingRunsOf(db: Knex): NumberingRuns {
  let runs = numberingRuns.get(db);
  if (!runs) {
    runs = new NumberingRuns(() => runNumbering(db));
    numberingRuns.set(db, runs);
  }
  return runs;
}

/** How many numbering transactions (runs) this process has started on `db`: callers share them (tests, benchmarks). */
export function numberingRunsStarted(db: Knex): number {
  return numberingRunsOf(db).runsStarted;
}

/**
 * The numbering step: gives every finalized, unnumbered invoice the next gap-free number of the series, in
 * `finalization_seq` order, marks it open and queues its `invoice.finalized` event. Run right after each
 * finalization commits, by the janitor and by whoever needs an issued invoice; any run numbers everyone's queue,
 * so a crash between finalization and numbering is repaired by the next run. Runs one at a time (an advisory
 * lock, held for the short transaction only), and callers in one process share runs (store/numbering-runs.ts):
 * returns how many invoices the run it joined numbered, once that run has committed. Call it outside any
 * transaction.
 */
export async function numberFinalizedInvoices(db: Knex): Promise<number> {
  return (await numberingRunsOf(db).join()).numbered;
}

/**
 * The invoice as issued, for a caller holding its row after the finalizing commit (or any committed read of it):
 * when it still waits for its number, joins the next numbering run (or finds it numbered by the run in flight) and
 * takes the number from what that run issued; only when an earlier run (another worker's, the janitor's) numbered
 * it is the row read again.
 */
export async function issueFinalizedInvoice(db: Knex, invoice: InvoiceRow): Promise<InvoiceRow> {
  if (!isAwaitingNumber(invoice)) return invoice;
  const run = await numberingRunsOf(db).joinFor(invoice.id);
  const issued = run.issued.get(invoice.id);
  if (issued) return { ...invoice, number: issued.number, status: 'open', finalized_at: issued.finalizedAt };
  // Numbered by an earlier run than ours (one that read the queue after our commit but before ours started).
  const current = await findInvoice(db, invoice.id);
  if (!current || isAwaitingNumber(current)) throw new Error(`invoice ${invoice.id} was not numbered by a run started after its finalization committed`);
  return current;
}

/**
 * The invoice as issued: when it is finalized but still waiting for its number (the finalizer crashed before
 * numbering, or another run is numbering it), runs the numbering step first. Callers that charge, show or return
 * an invoice as final go through this, so none of them ever sees a final invoice without its number.
 */
export async function findIssuedInvoice(db: Knex, invoiceId: string): Promise<InvoiceRow | undefined> {
  const invoice = await findInvoice(db, invoiceId);
  return invoice && issueFinalizedInvoice(db, invoice);
}

/**
 * Before a read that lists invoices as issued or not (GET /v1/invoices): numbers every finalized invoice still
 * waiting for its number (a finalizer that crashed between its commit and its numbering run), so a listing never
 * shows a final invoice as a draft without its number, nor leaves it out of `status=open`, until the janitor runs.
 * One index-only probe (invoices_awaiting_number) when nothing waits; otherwise joins the shared numbering run.
 */
export async function numberInvoicesAwaitingNumber(db: Knex): Promise<void> {
  const waiting = await db('invoices').whereNull('number').whereNotNull('finalization_seq').first('id');
  if (waiting) await numberFinalizedInvoices(db);
}

export interface NewAdjustmentInvoice {
  readonly customerId: string;
  readonly subscriptionId: string;
  readonly currency: string;
  readonly periodStart: string;
  readonly periodEnd: string;
}

/** A draft adjustment invoice (a re-rating's extra charge); several may exist per period, so no unique key. */
export async function insertAdjustmentDraft(trx: Knex.Transaction, invoice: NewAdjustmentInvoice): Promise<InvoiceRow> {
  const [draft] = await trx<InvoiceRow>('invoices')
    .insert({
      customer_id: invoice.customerId,
      subscription_id: invoice.subscriptionId,
      kind: 'adjustment',
      status: 'draft',
      currency: invoice.currency,
      period_start: new Date(invoice.periodStart),
      period_end: new Date(invoice.periodEnd),
    })
    .returning('*');
  return draft;
}

/** The invoice's lines of these kinds that bill the period starting at `periodStart`. */
export async function listInvoiceLinesOfPeriod(
  db: Db,
  invoiceId: string,
  kinds: readonly string[],
  periodStart: Date,
): Promise<InvoiceLineRow[]> {
  return db<InvoiceLineRow>('invoice_lines')
    .where({ invoice_id: invoiceId })
    .whereIn('kind', [...kinds])
    .andWhere('period_start', periodStart);
}

/** The first usage line of an invoice: it names the usage period the invoice billed. */
export async function findFirstUsageLine(db: Db, invoiceId: string): Promise<InvoiceLineRow | undefined> {
  return db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoiceId, kind: 'usage' }).orderBy('position').first();
}

export interface InvoiceFilters {
  readonly customerId?: string;
  readonly subscriptionId?: string;
  readonly status?: InvoiceRow['status'];
}

/**
 * The opaque paging cursor of the invoice lists: it names the last invoice of a page. The next page starts after
 * that row's own sort key, read in SQL (timestamps to the microsecond: a key rebuilt from a JS Date, to the
 * millisecond, would repeat or skip rows created within the same millisecond).
 */
export function encodeInvoiceCursor(invoiceId: string): string {
  return Buffer.from(JSON.stringify({ v: 1, id: invoiceId }), 'utf8').toString('base64url');
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The invoice id a cursor names, or null when it is not one of ours (refused as validation_failed by the API). */
export function decodeInvoiceCursor(cursor: string): string | null {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) return null;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null) return null;
    const { v, id } = parsed as { v?: unknown; id?: unknown };
    return v === 1 && typeof id === 'string' && UUID.test(id) ? id : null;
  } catch {
    return null;
  }
}

/** One page of a newest-first invoice list; `foreignCursor`: the cursor names no invoice of this list. */
export type InvoicePage<Row> = { readonly rows: Row[]; readonly hasMore: boolean; readonly foreignCursor?: false } | { readonly foreignCursor: true };

/**
 * Invoices matching every given filter, newest period first, then newest created, then id: a total order, so that
 * keyset paging (`startingAfter`, the last invoice of the previous page) yields each invoice exactly once, and an
 * invoice issued between pages never shifts a later page (before, the list stopped at `limit` with no cursor: past
 * the newest 200, finance could not reach an invoice). The cursor must be an invoice of the same customer and
 * subscription filter (status may have moved on since: its position is its sort key, not its status).
 */
export async function listInvoices(db: Db, filters: InvoiceFilters, limit: number, startingAfter?: string): Promise<InvoicePage<InvoiceRow>> {
  const where: Partial<InvoiceRow> = {};
  if (filters.customerId) where.customer_id = filters.customerId;
  if (filters.subscriptionId) where.subscription_id = filters.subscriptionId;
  if (startingAfter) {
    const cursorWhere: Partial<InvoiceRow> = { ...where, id: startingAfter };
    if (!(await db<InvoiceRow>('invoices').where(cursorWhere).first('id'))) return { foreignCursor: true };
  }
  if (filters.status) where.status = filters.status;
  // Newest first, as documented.
  const query = db<InvoiceRow>('invoices').where(where);
  if (startingAfter) {
    query.andWhereRaw('(period_start, created_at, id) < (SELECT c.period_start, c.created_at, c.id FROM invoices c WHERE c.id = ?)', [startingAfter]);
  }
  const rows = await query
    .orderBy([
      { column: 'period_start', order: 'desc' },
      { column: 'created_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ])
    .limit(limit + 1);
  return { rows: rows.slice(0, limit), hasMore: rows.length > limit };
}

/**
 * A subscription's issued (non-draft) invoices and the credit notes against them, newest first (created, then id: a
 * total order for keyset paging after `startingAfter`, which must be one of them). Credit notes carry no
 * subscription_id (migration 0104): they are found through the invoice they credit.
 */
export async function listSubscriptionInvoices(
  db: Knex,
  subscriptionId: string,
  limit: number,
  startingAfter?: string,
): Promise<InvoicePage<InvoiceRow & { credited_invoice_id: string | null }>> {
  const ofSubscription = () =>
    db<InvoiceRow & { credited_invoice_id: string | null }>('invoices')
      .whereNot({ status: 'draft' })
      .andWhere((where) =>
        where
          .where({ subscription_id: subscriptionId })
          .orWhere((credit) =>
            credit.where({ kind: 'credit_note' }).whereIn('credited_invoice_id', db('invoices').select('id').where({ subscription_id: subscriptionId })),
          ),
      );
  if (startingAfter && !(await ofSubscription().andWhere({ id: startingAfter }).first('id'))) return { foreignCursor: true };
  const query = ofSubscription();
  if (startingAfter) query.andWhereRaw('(created_at, id) < (SELECT c.created_at, c.id FROM invoices c WHERE c.id = ?)', [startingAfter]);
  const rows = await query
    .orderBy([
      { column: 'created_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ])
    .limit(limit + 1);
  return { rows: rows.slice(0, limit), hasMore: rows.length > limit };
}

/**
 * The retention discount (percent off) the period's own invoice gave the fee it billed in advance, while that fee is
 * still the one in force at `until`: no immediate plan change inside the period before it (that change's proration
 * billed the new fee, undiscounted). Null when there is none. A credit for unused time gives back what was paid.
 * `unwritten`: the discount the workflow will give that invoice when it is not written yet (a change in the usage
 * grace window after the boundary); before, no invoice meant no discount, and the credit was a share of the list
 * price (-100.00 where 70.00 is billed, refunded in full on a downgrade).
 */
export async function discountOnPeriodFee(trx: Knex.Transaction, subscriptionId: string, period: PeriodBounds, until: Date, unwritten: string | null = null): Promise<string | null> {
  // The invoice that billed the period's fee: a resume from a pause moves the period's start later (the paused time
  // is given back), so it is the latest one starting at or before that start and ending after it. Matched on the
  // exact start, a change after a pause found no discount and credited a share of the full fee: -67.74 where 70.00
  // (30 % off 100.00) was paid for 31 days and 21 were left.
  const feeInvoice: { id: string; period_start: Date } | undefined = await trx('invoices')
    .where({ subscription_id: subscriptionId, kind: 'period' })
    .whereNot('status', 'void')
    .andWhere('period_start', '<=', new Date(period.start))
    .andWhere('period_end', '>', new Date(period.start))
    .orderBy('period_start', 'desc')
    .first('id', 'period_start');
  if (!feeInvoice && !unwritten) return null;
  const changed = await trx('plan_changes')
    .where({ subscription_id: subscriptionId })
    .andWhere('change_at', '>', feeInvoice?.period_start ?? new Date(period.start))
    .andWhere('change_at', '<', until)
    .first('id');
  if (changed) return null;
  if (!feeInvoice) return unwritten;
  const discount: { percent_off: string | null } | undefined = await trx('invoice_lines')
    .where({ invoice_id: feeInvoice.id, kind: 'discount' })
    .first(trx.raw("breakdown ->> 'percentOff' AS percent_off"));
  return discount?.percent_off ?? null;
}
