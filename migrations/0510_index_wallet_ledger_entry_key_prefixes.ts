import type { Knex } from 'knex';

/**
 * Wallet draws and give-backs are found by entry-key prefix (`draw:<invoice>:%`, `reverse:<invoice>/%`,
 * store/wallets.ts and store/wallet-draws.ts). The unique (wallet_id, entry_key) index cannot serve a LIKE prefix
 * under a non-C collation; this one can, so a long-lived wallet's ledger is not scanned per invoice.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw('CREATE INDEX wallet_ledger_entry_key_prefix ON wallet_ledger (wallet_id, entry_key text_pattern_ops)');
}

export async function down(db: Knex): Promise<void> {
  await db.raw('DROP INDEX wallet_ledger_entry_key_prefix');
}
