import type { Knex } from 'knex';

/**
 * The invoice numbering step as one server-side call (store/invoices.ts, numberFinalizedInvoices): the lock is
 * held for the work and the commit only, not for seven client round trips, so numbering keeps up with many
 * concurrent finalizers. Each statement of a volatile PL/pgSQL function takes a new snapshot, so the queue is
 * read after the lock is granted and sees what the run it waited for numbered.
 *
 * Numbers: `<series>-` and at least six digits, e.g. INV-000042, like nextInvoiceNumber. The issue time is read
 * under the lock, so it never goes backwards along the numbers. Returns how many invoices it numbered.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(`
    CREATE FUNCTION number_finalized_invoices(p_series text, p_limit integer) RETURNS integer
    LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
      queued uuid[];
      last_issued bigint;
      issued_at timestamptz;
    BEGIN
      PERFORM pg_advisory_xact_lock(hashtextextended('invoice-numbering:' || p_series, 0));
      SELECT array_agg(id ORDER BY finalization_seq) INTO queued
        FROM (SELECT id, finalization_seq FROM invoices
              WHERE number IS NULL AND finalization_seq IS NOT NULL
              ORDER BY finalization_seq LIMIT p_limit) AS waiting;
      IF queued IS NULL THEN
        RETURN 0;
      END IF;
      -- The counter moves once per batch, in this transaction: a rollback returns every number (no holes).
      INSERT INTO invoice_number_sequences AS counter (series, last_number) VALUES (p_series, cardinality(queued))
        ON CONFLICT (series) DO UPDATE SET last_number = counter.last_number + EXCLUDED.last_number
        RETURNING counter.last_number, clock_timestamp() INTO last_issued, issued_at;
      WITH numbered AS (
        SELECT queue.id, queue.position,
               p_series || '-' || lpad(value::text, greatest(6, length(value::text)), '0') AS number
          FROM unnest(queued) WITH ORDINALITY AS queue(id, position),
               LATERAL (SELECT last_issued - cardinality(queued) + queue.position AS value) AS assigned
      ), issued AS (
        UPDATE invoices SET number = numbered.number, status = 'open', finalized_at = issued_at
          FROM numbered WHERE invoices.id = numbered.id
          RETURNING invoices.id, invoices.number, invoices.finalized_event, numbered.position
      )
      INSERT INTO outbox (event_type, aggregate_type, aggregate_id, dedupe_key, payload)
        SELECT 'invoice.finalized', 'invoice', issued.id::text, 'invoice.finalized:' || issued.id,
               coalesce(issued.finalized_event, '{}'::jsonb) || jsonb_build_object('invoiceId', issued.id, 'number', issued.number)
          FROM issued ORDER BY issued.position
        ON CONFLICT (dedupe_key) DO NOTHING;
      RETURN cardinality(queued);
    END
    $$
  `);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP FUNCTION number_finalized_invoices(text, integer)');
}
