import type { Knex } from 'knex';

/**
 * The sandbox ledger records each charge's merchant reference (our invoice id), so the
 * `pm_sandbox_declines_<N>_then_ok` test cards can count earlier declines per invoice.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('sandbox_gateway_charges', (t) => {
    t.text('reference').index();
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('sandbox_gateway_charges', (t) => {
    t.dropColumn('reference');
  });
}
