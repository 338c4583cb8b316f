import type { Knex } from 'knex';

/**
 * The numbering step that also says what it numbered (store/invoices.ts, `numberFinalizedInvoices` and
 * `issueFinalizedInvoice`): the same work as `number_finalized_invoices` (migration 0411: the same advisory lock,
 * queue, counter, issue time and `invoice.finalized` events), returning one row per invoice it numbered, in
 * number order. A caller waiting for its invoice's number takes it from here instead of reading the row again.
 * The 0411 function stays, so a worker of the previous release numbers correctly beside this one (same lock).
 */
export async function up(db: Knex): Promise<void> {
  // OUT column names differ from the invoices columns, which PL/pgSQL would otherwise find ambiguous.
  await db.raw(`
    CREATE FUNCTION issue_finalized_invoices(p_series text, p_limit integer)
      RETURNS TABLE (issued_id uuid, issued_number text, issued_at timestamptz)
    LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
      queued uuid[];
      last_issued bigint;
      issue_time timestamptz;
    BEGIN
      PERFORM pg_advisory_xact_lock(hashtextextended('invoice-numbering:' || p_series, 0));
      SELECT array_agg(waiting.id ORDER BY waiting.finalization_seq) INTO queued
        FROM (SELECT invoices.id, invoices.finalization_seq FROM invoices
              WHERE invoices.number IS NULL AND invoices.finalization_seq IS NOT NULL
              ORDER BY invoices.finalization_seq LIMIT p_limit) AS waiting;
      IF queued IS NULL THEN
        RETURN;
      END IF;
      -- The counter moves once per batch, in this transaction: a rollback returns every number (no holes).
      INSERT INTO invoice_number_sequences AS counter (series, last_number) VALUES (p_series, cardinality(queued))
        ON CONFLICT (series) DO UPDATE SET last_number = counter.last_number + EXCLUDED.last_number
        RETURNING counter.last_number, clock_timestamp() INTO last_issued, issue_time;
      RETURN QUERY
      WITH numbered AS (
        SELECT queue.id, queue.position,
               p_series || '-' || lpad(value::text, greatest(6, length(value::text)), '0') AS number
          FROM unnest(queued) WITH ORDINALITY AS queue(id, position),
               LATERAL (SELECT last_issued - cardinality(queued) + queue.position AS value) AS assigned
      ), issued AS (
        UPDATE invoices SET number = numbered.number, status = 'open', finalized_at = issue_time
          FROM numbered WHERE invoices.id = numbered.id
          RETURNING invoices.id, invoices.number, invoices.finalized_event, numbered.position
      ), events AS (
        INSERT INTO outbox (event_type, aggregate_type, aggregate_id, dedupe_key, payload)
          SELECT 'invoice.finalized', 'invoice', issued.id::text, 'invoice.finalized:' || issued.id,
                 coalesce(issued.finalized_event, '{}'::jsonb) || jsonb_build_object('invoiceId', issued.id, 'number', issued.number)
            FROM issued ORDER BY issued.position
          ON CONFLICT (dedupe_key) DO NOTHING
      )
      SELECT issued.id, issued.number, issue_time FROM issued ORDER BY issued.position;
    END
    $$
  `);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP FUNCTION issue_finalized_invoices(text, integer)');
}
