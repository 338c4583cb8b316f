import type { Knex } from 'knex';

/**
 * The part of a credit total (an invoice whose total is negative) taken off the unpaid invoice of its time that its
 * `credited_invoice_id` names (store/credit-total-refunds.ts applyToUnpaidInvoice). Before, a credit total was taken
 * off only when that invoice owed all of it; a credit larger than what the invoice owed was refunded whole while the
 * invoice kept asking for everything. Now it takes what the invoice owes and the rest is refunded. NULL (every row
 * written before) means all of it, as it did then. Never more than the credit, never negative.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(`
    ALTER TABLE invoices
      ADD COLUMN amount_taken_off numeric(30, 12),
      ADD CONSTRAINT invoices_amount_taken_off_within_credit
        CHECK (amount_taken_off IS NULL OR (credited_invoice_id IS NOT NULL AND total < 0 AND amount_taken_off > 0 AND amount_taken_off <= -total))`);
}

export async function down(db: Knex): Promise<void> {
  // The code before knows only whole credits taken off: a partial one goes back to being refunded (unlinked).
  await db.raw(`UPDATE invoices SET credited_invoice_id = NULL WHERE amount_taken_off IS NOT NULL AND amount_taken_off <> -total`);
  await db.raw('ALTER TABLE invoices DROP CONSTRAINT invoices_amount_taken_off_within_credit, DROP COLUMN amount_taken_off');
}
