import type { Knex } from 'knex';

/**
 * Batch invoice numbering (docs/scaling.md, "The serial point: invoice numbers"). A finalized invoice commits
 * without a number, stamped with `finalization_seq` from a Postgres sequence; a short numbering step then gives
 * the unnumbered ones the next gap-free numbers in that order. The sequence only orders: its holes (rolled-back
 * nextval calls) never reach a number, which still comes from the counter row in invoice_number_sequences.
 * `finalized_event` keeps the `invoice.finalized` event's payload until the
 * numbering step writes that event, number included.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw('CREATE SEQUENCE invoice_finalization_seq AS bigint');
  await db.schema.alterTable('invoices', (t) => {
    t.bigInteger('finalization_seq');
    t.jsonb('finalized_event');
  });
  // The numbering step's queue: finalized, not yet numbered. Stays tiny (milliseconds of backlog).
  await db.raw('CREATE INDEX invoices_awaiting_number ON invoices (finalization_seq) WHERE number IS NULL AND finalization_seq IS NOT NULL');
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP INDEX invoices_awaiting_number');
  await db.schema.alterTable('invoices', (t) => {
    t.dropColumn('finalization_seq');
    t.dropColumn('finalized_event');
  });
  await db.raw('DROP SEQUENCE invoice_finalization_seq');
}
