import type { Knex } from 'knex';

/**
 * Invoice numbers must be gap-free, which a Postgres SEQUENCE is not (a rolled-back nextval is lost).
 * A counter row, incremented under a row lock in the finalizing transaction, rolls back with it.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('invoice_number_sequences', (t) => {
    t.text('series').primary(); // e.g. INV, CN (credit notes)
    t.bigInteger('last_number').notNullable().defaultTo(0);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('invoice_number_sequences');
}
