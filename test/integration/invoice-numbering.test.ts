/**
 * Batch invoice numbering (docs/scaling.md, "The serial point: invoice numbers") against a real Postgres:
 * finalization commits without a number; the numbering step, run after each commit by the finalizer (and by the
 * janitor, the charge and whoever finalizes next), issues numbers gap-free and in finalization order.
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import { buildInvoiceDocument } from '../../api/documents/invoice-document';
import { createJanitorActivities } from '../../activities/janitor';
import { createPaymentActivities } from '../../activities/payments';
import { DEFAULT_RECONCILIATION_MARGINS } from '../../contract/janitor';
import type { PeriodInvoiceSummary } from '../../contract/subscription';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import { insertCustomerFixtures, insertPlanFixtures, insertSubscriptionFixtures } from '../../store/bulk-fixtures';
import type { Database } from '../../store/database';
import { finalizeInvoice, insertDraftInvoice, InvoiceRow, issueFinalizedInvoice, listInvoiceLines, numberFinalizedInvoices, numberingRunsStarted } from '../../store/invoices';
import { insertCreditNote } from '../../store/credit-notes';
import { inTransaction, Transaction } from '../../store/transactions';
import { createTestDatabase } from '../support/database';

let db: Database;
let planId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  [{ id: planId }] = await insertPlanFixtures(db, [
    { code: 'numbering', version: 1, name: 'Numbering', currency: 'USD', billing_interval: 'P1M', flat_fee: '10.00' },
  ]);
});

afterAll(async () => {
  await db?.destroy();
});

beforeEach(async () => {
  // Each test reads the whole series, so each starts from an empty one.
  await db.raw("TRUNCATE invoice_lines, payments, invoices, outbox RESTART IDENTITY CASCADE");
  await db('invoice_number_sequences').delete();
});

async function subscriptions(count: number, prefix: string): Promise<{ id: string; customer_id: string }[]> {
  const customers = await insertCustomerFixtures(
    db,
    Array.from({ length: count }, (_, index) => ({ external_id: `${prefix}-${index}-${Date.now()}`, name: `c${index}`, currency: 'USD', payment_method: 'pm_sandbox_ok' })),
  );
  return insertSubscriptionFixtures(
    db,
    customers.map((customer) => ({ customer_id: customer.id, plan_id: planId, status: 'active', workflow_id: `subscription:${customer.id}`, start_at: new Date('2031-01-01T00:00:00Z') })),
  );
}

const monthStart = (month: number): string => new Date(Date.UTC(2031, month, 1)).toISOString();
const periodOf = (month: number) => ({ start: monthStart(month), end: monthStart(month + 1) });

/** The finalizing transaction alone, as a crash right after its commit leaves it: no numbering step. */
async function finalizeWithoutNumbering(subscription: { id: string; customer_id: string }, month: number): Promise<InvoiceRow> {
  return inTransaction(db, async (trx) => {
    const period = periodOf(month);
    const draft = (await insertDraftInvoice(trx, {
      customerId: subscription.customer_id,
      subscriptionId: subscription.id,
      kind: 'period',
      currency: 'USD',
      periodStart: period.start,
      periodEnd: period.end,
    }))!;
    return finalizeInvoice(trx, draft, [
      { kind: 'flat_fee', description: 'Numbering', metricCode: null, quantity: '1', amount: '10.00', periodStart: period.start, periodEnd: period.end, breakdown: {} },
    ]);
  });
}

/**
 * Every invoice in finalization order: by issue time (one per numbering run, increasing from run to run), then
 * by finalization sequence within a run. Unnumbered invoices (issue time null) come last, by sequence.
 */
async function allInvoices(): Promise<(InvoiceRow & { finalization_seq: string })[]> {
  return db('invoices').orderByRaw('finalized_at NULLS LAST, finalization_seq');
}

function expectGapFreeInFinalizationOrder(invoices: readonly (InvoiceRow & { finalization_seq: string })[]): void {
  expect(invoices.map((invoice) => invoice.number)).toEqual(invoices.map((_, index) => `INV-${String(index + 1).padStart(6, '0')}`));
  for (const invoice of invoices) expect(invoice.status).toBe('open');
}

async function finalizedEvents(): Promise<{ aggregate_id: string; payload: { number: string; invoiceId: string; total: string } }[]> {
  return db('outbox').where({ event_type: 'invoice.finalized' }).orderBy('id');
}

test('40 concurrent finalizers get gap-free numbers in finalization order, each returned with its number', async () => {
  const invoicing = createInvoicingActivities(db);
  const subs = await subscriptions(40, 'concurrent');
  const months = 5;
  // 40 callers at once, each finalizing its subscription's next period as soon as the previous one returned.
  const summaries: PeriodInvoiceSummary[] = [];
  await Promise.all(
    subs.map(async (subscription) => {
      for (let month = 0; month < months; month += 1) {
        summaries.push(await invoicing.createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: periodOf(month), usagePeriod: null }));
      }
    }),
  );

  expect(summaries).toHaveLength(40 * months);
  for (const summary of summaries) {
    expect(summary.number).toMatch(/^INV-\d{6}$/);
    expect(summary.status).toBe('open');
  }
  const invoices = await allInvoices();
  expect(invoices).toHaveLength(40 * months);
  expectGapFreeInFinalizationOrder(invoices);
  // Several numbering runs took part (else this proves nothing about batches), and the counter ends on the last number.
  expect(new Set(invoices.map((invoice) => new Date(invoice.finalized_at!).getTime())).size).toBeGreaterThan(1);
  expect(await db('invoice_number_sequences').where({ series: 'INV' }).first()).toMatchObject({ last_number: String(40 * months) });
  // Per subscription, a period finalized after the previous one returned always has the larger number.
  for (const subscription of subs) {
    const own = invoices.filter((invoice) => invoice.subscription_id === subscription.id).sort((a, b) => +a.period_start - +b.period_start);
    expect(own.map((invoice) => invoice.number)).toEqual([...own.map((invoice) => invoice.number)].sort());
  }
  // One invoice.finalized event per invoice, carrying the number it was issued with, in number order.
  const events = await finalizedEvents();
  expect(events.map((event) => event.payload.number)).toEqual(invoices.map((invoice) => invoice.number));
  expect(events.map((event) => event.payload.total)).toEqual(invoices.map(() => '10.00'));
});

test('a crash between finalization and numbering: the next finalization numbers the waiting invoices first, in order', async () => {
  const [a, b, c] = await subscriptions(3, 'crash');
  const first = await finalizeWithoutNumbering(a, 0);
  const second = await finalizeWithoutNumbering(b, 0);
  // Finalized but unnumbered: not issued, so nothing shows, sends or charges it.
  for (const waiting of await allInvoices()) {
    expect(waiting).toMatchObject({ number: null, status: 'draft', finalized_at: null });
  }
  expect(await finalizedEvents()).toEqual([]);
  const document = buildInvoiceDocument({ invoice: first, lines: await listInvoiceLines(db, first.id), customer: { name: 'c0', external_id: 'c0' } });
  expect(document).toMatchObject({ number: 'DRAFT', status: 'draft', issuedAt: null, notes: ['Not issued yet: its number is being assigned.'] });

  const next = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: c.id, kind: 'period', flatFeePeriod: periodOf(0), usagePeriod: null });
  expect(next.number).toBe('INV-000003');
  const invoices = await allInvoices();
  expect(invoices.map((invoice) => invoice.id)).toEqual([first.id, second.id, next.invoiceId]);
  expectGapFreeInFinalizationOrder(invoices);
  expect((await finalizedEvents()).map((event) => event.payload.number)).toEqual(['INV-000001', 'INV-000002', 'INV-000003']);
});

test('a crash between finalization and numbering: the janitor numbers the waiting invoices in order', async () => {
  const subs = await subscriptions(3, 'janitor');
  const finalized = [];
  for (const subscription of subs) finalized.push(await finalizeWithoutNumbering(subscription, 1));
  expect((await allInvoices()).every((invoice) => invoice.number === null)).toBe(true);

  const janitor = createJanitorActivities(db, new SandboxGateway(db));
  await janitor.scanForReconciliation({ asOf: new Date().toISOString(), margins: DEFAULT_RECONCILIATION_MARGINS });

  const invoices = await allInvoices();
  expect(invoices.map((invoice) => invoice.id)).toEqual(finalized.map((invoice) => invoice.id));
  expectGapFreeInFinalizationOrder(invoices);
});

test('a retried invoicing activity after a crash returns the invoice with its number', async () => {
  const [subscription] = await subscriptions(1, 'retry');
  const waiting = await finalizeWithoutNumbering(subscription, 2);
  const retried = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: periodOf(2), usagePeriod: null });
  expect(retried).toMatchObject({ invoiceId: waiting.id, number: 'INV-000001', status: 'open', total: '10.00' });
});

test('a charge of an invoice still waiting for its number numbers it first, so the payment carries it', async () => {
  const [subscription] = await subscriptions(1, 'charge');
  const waiting = await finalizeWithoutNumbering(subscription, 3);
  const result = await createPaymentActivities(db, new SandboxGateway(db)).chargeInvoice({ invoiceId: waiting.id, attempt: 1 });
  expect(result.outcome).toBe('succeeded');
  expect(await db('invoices').where({ id: waiting.id }).first()).toMatchObject({ number: 'INV-000001', status: 'paid' });
  const paid = await db('outbox').where({ event_type: 'payment.succeeded', aggregate_id: waiting.id }).first();
  expect(paid.payload.invoiceNumber).toBe('INV-000001');
});

test('a finalization that rolls back leaves a hole in the sequence, never in the numbers', async () => {
  const [a, b] = await subscriptions(2, 'rollback');
  await expect(
    inTransaction(db, async (trx) => {
      const draft = (await insertDraftInvoice(trx, { customerId: a.customer_id, subscriptionId: a.id, kind: 'period', currency: 'USD', periodStart: monthStart(4), periodEnd: monthStart(5) }))!;
      await finalizeInvoice(trx, draft, []);
      throw new Error('the rest of the period transaction failed');
    }),
  ).rejects.toThrow('the rest of the period transaction failed');
  await finalizeWithoutNumbering(b, 4);
  await finalizeWithoutNumbering(a, 4);
  expect(await numberFinalizedInvoices(db)).toBe(2);
  expectGapFreeInFinalizationOrder(await allInvoices());
  // Nothing left: a second run writes nothing.
  expect(await numberFinalizedInvoices(db)).toBe(0);
});

/**
 * Holds `hold` (a lock statement) in a transaction on its own connection until `release` is called, so a
 * numbering run waits at a known point. Resolves once the lock is held.
 */
async function holdLock(hold: (trx: Transaction) => Promise<unknown>): Promise<() => Promise<void>> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let held!: () => void;
  const holding = new Promise<void>((resolve) => (held = resolve));
  const transaction = inTransaction(db, async (trx) => {
    await hold(trx);
    held();
    await released;
  });
  await holding;
  return async () => {
    release();
    await transaction;
  };
}

/** Waits until a numbering run's statement is waiting for a lock (so it is in flight at a known point). */
async function untilNumberingRunWaits(): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt += 1) {
    const { rows } = await db.raw<{ rows: { waiting: string }[] }>(
      "SELECT count(*) AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%issue_finalized_invoices%'",
    );
    if (Number(rows[0].waiting) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('no numbering run ever waited for the held lock');
}

test('40 callers of one process share numbering runs: the first run numbers all 40 in order, and the 39 who joined the next one take their numbers from it', async () => {
  const subs = await subscriptions(40, 'shared');
  const runsBefore = numberingRunsStarted(db);
  // Another worker is numbering (it holds the series' advisory lock) while our 40 finalizations commit.
  const releaseNumbering = await holdLock((trx) => trx.raw("SELECT pg_advisory_xact_lock(hashtextextended('invoice-numbering:INV', 0))"));
  const finalizations = subs.map((subscription) => finalizeWithoutNumbering(subscription, 0));
  // Each caller asks for its issued invoice as soon as its own finalization committed, as the activities do.
  const issuing = finalizations.map((finalization) => finalization.then((invoice) => issueFinalizedInvoice(db, invoice)));
  await Promise.all(finalizations);
  // All 40 have joined: the first caller started a run (waiting for the lock), the 39 others joined the next one
  // (store/numbering-runs.ts `joinFor`: they take the run in flight instead when it turns out to have numbered them).
  expect(numberingRunsStarted(db) - runsBefore).toBe(1);

  await releaseNumbering();
  const issued = await Promise.all(issuing);
  // Two numbering transactions for 40 callers, not 40 (the second finds the queue empty).
  expect(numberingRunsStarted(db) - runsBefore).toBe(2);
  const invoices = await allInvoices();
  expectGapFreeInFinalizationOrder(invoices);
  // The first run read the queue after all 40 commits, so it numbered them all, in finalization order.
  expect(new Set(invoices.map((invoice) => new Date(invoice.finalized_at!).getTime())).size).toBe(1);
  // Every caller got its invoice back as issued: number, open, issue time.
  const byId = new Map(invoices.map((invoice) => [invoice.id, invoice]));
  for (const invoice of issued) {
    expect(invoice).toMatchObject({ number: byId.get(invoice.id)!.number, status: 'open', finalized_at: byId.get(invoice.id)!.finalized_at });
  }
  expect((await finalizedEvents()).map((event) => event.payload.number)).toEqual(invoices.map((invoice) => invoice.number));
});

test('a caller whose finalization commits while a run is in flight is numbered by the next run, not left behind', async () => {
  const [a, b] = await subscriptions(2, 'in-flight');
  const runsBefore = numberingRunsStarted(db);
  const first = await finalizeWithoutNumbering(a, 0);
  // The run for the first invoice reads the queue, then waits on the invoice's row (locked here) before numbering.
  const releaseRow = await holdLock((trx) => trx('invoices').where({ id: first.id }).forUpdate());
  const issuingFirst = issueFinalizedInvoice(db, first);
  await untilNumberingRunWaits();

  // The second finalization commits after that run read its queue: it must not count on that run.
  const second = await finalizeWithoutNumbering(b, 0);
  const issuingSecond = issueFinalizedInvoice(db, second);
  expect(numberingRunsStarted(db) - runsBefore).toBe(1);

  await releaseRow();
  expect(await issuingFirst).toMatchObject({ id: first.id, number: 'INV-000001', status: 'open' });
  expect(await issuingSecond).toMatchObject({ id: second.id, number: 'INV-000002', status: 'open' });
  expect(numberingRunsStarted(db) - runsBefore).toBe(2);
  const invoices = await allInvoices();
  expect(invoices.map((invoice) => invoice.id)).toEqual([first.id, second.id]);
  // Two runs: the second invoice got a later issue time than the first.
  expect(+invoices[1].finalized_at!).toBeGreaterThan(+invoices[0].finalized_at!);
  expectGapFreeInFinalizationOrder(invoices);
});

test('credit notes issue times follow their numbers, whichever transaction began first', async () => {
  // The CN series is numbered in the credit note's own transaction. Its issue time was the transaction's start
  // (now()): one that began first and took its number second showed an earlier time than the number before it.
  const [subscription] = await subscriptions(1, 'credit-notes');
  const invoice = await finalizeWithoutNumbering(subscription, 0);
  const earlier = await db.transaction();
  try {
    await earlier.raw('SELECT 1'); // its now() is fixed from here
    await new Promise((resolve) => setTimeout(resolve, 50));
    await db.transaction((later) => insertCreditNote(later, invoice, { total: '1.00', idempotencyKey: 'second-to-begin', reason: 'test' }));
    await insertCreditNote(earlier, invoice, { total: '2.00', idempotencyKey: 'first-to-begin', reason: 'test' });
    await earlier.commit();
  } finally {
    if (!earlier.isCompleted()) await earlier.rollback();
  }
  const notes: InvoiceRow[] = await db('invoices').where({ kind: 'credit_note' }).orderBy('number');
  expect(notes.map((note) => note.number)).toEqual(['CN-000001', 'CN-000002']);
  expect(+notes[1].finalized_at!).toBeGreaterThan(+notes[0].finalized_at!);
});
