import type { Knex } from 'knex';

/**
 * Credit notes are `invoices` rows of kind `credit_note` (series CN) that point at the invoice they credit.
 * Several may credit one invoice: the period uniqueness covers only the scheduled kinds since migration 0017.
 * Their own duplicate barrier is (credited invoice, idempotency key): a retried refund request is one note.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('invoices', (t) => {
    t.uuid('credited_invoice_id').references('invoices.id').index();
    t.text('idempotency_key');
    t.text('reason');
  });
  await db.raw(
    `CREATE UNIQUE INDEX invoices_credit_note_idempotency ON invoices (credited_invoice_id, idempotency_key)
     WHERE kind = 'credit_note'`,
  );
  await db.raw(
    `ALTER TABLE invoices ADD CONSTRAINT invoices_credit_note_shape
     CHECK (kind <> 'credit_note' OR (credited_invoice_id IS NOT NULL AND idempotency_key IS NOT NULL))`,
  );
}

export async function down(db: Knex): Promise<void> {
  await db.raw('ALTER TABLE invoices DROP CONSTRAINT invoices_credit_note_shape');
  await db.raw('DROP INDEX invoices_credit_note_idempotency');
  await db.schema.alterTable('invoices', (t) => {
    t.dropColumn('reason');
    t.dropColumn('idempotency_key');
    t.dropColumn('credited_invoice_id');
  });
}
