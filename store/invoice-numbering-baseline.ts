/**
 * Benchmarks only (bench/invoicing.ts): the finalizing step as it was before batch numbering, so the benchmark
 * can show before and after in one run. The series' counter row is locked from the number until the commit,
 * which serializes every finalization in the system on that row. Product code never calls this.
 */
import type { Knex } from 'knex';
import { DraftInvoiceLine, invoiceTotal } from '../domain/invoice';
import { INVOICE_SERIES, insertInvoiceLines, InvoiceRow, nextInvoiceNumber } from './invoices';
import { enqueueOutboxEvent } from './outbox';

export async function finalizeInvoiceUnderCounterLock(trx: Knex.Transaction, draft: InvoiceRow, lines: readonly DraftInvoiceLine[]): Promise<InvoiceRow> {
  await insertInvoiceLines(trx, draft.id, lines);
  const number = await nextInvoiceNumber(trx, INVOICE_SERIES);
  const total = invoiceTotal(lines, draft.currency);
  const [finalized] = await trx<InvoiceRow>('invoices')
    .where({ id: draft.id })
    .update({ number, total, status: 'open', finalized_at: trx.fn.now() as unknown as Date })
    .returning('*');
  await enqueueOutboxEvent(trx, {
    eventType: 'invoice.finalized',
    aggregateType: 'invoice',
    aggregateId: finalized.id,
    dedupeKey: `invoice.finalized:${finalized.id}`,
    payload: { invoiceId: finalized.id, number, kind: draft.kind, total, currency: draft.currency, customerId: draft.customer_id },
  });
  return finalized;
}

/** Empties the invoices (and what hangs off them) between measured phases, so each starts from the same tables. */
export async function truncateInvoices(db: Knex): Promise<void> {
  await db.raw('TRUNCATE invoice_lines, outbox, invoices CASCADE');
}

export async function countUnnumberedInvoices(db: Knex): Promise<number> {
  const [{ count }] = await db('invoices').whereNull('number').count<{ count: string }[]>({ count: '*' });
  return Number(count);
}
