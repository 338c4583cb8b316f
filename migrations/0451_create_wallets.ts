import type { Knex } from 'knex';

/**
 * Prepaid credit (issue 12, docs/wallets.md): a wallet per customer and currency, its grants, and an append-only
 * ledger whose running balance is the wallet's balance.
 *
 * - wallets.balance is the ledger's latest balance_after, kept in the row so a read is one lookup; every change
 *   writes the ledger entry and the new balance in one transaction, the row locked.
 * - wallet_grants.remaining is what is left of a grant; burn-down order is priority, earliest expiry, oldest.
 *   grant_key makes a grant's creation idempotent (a top-up's payment, a plan's period, a re-rating).
 * - wallet_ledger.entry_key makes each entry idempotent: a retried activity finds the entry it already wrote.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('wallets', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.uuid('customer_id').notNullable().references('customers.id');
    t.text('currency').notNullable();
    t.specificType('balance', 'numeric(30, 12)').notNullable().defaultTo(0);
    // How far below zero usage may take the balance (0: never negative).
    t.specificType('overdraft_limit', 'numeric(30, 12)').notNullable().defaultTo(0);
    t.specificType('low_balance_threshold', 'numeric(30, 12)');
    t.specificType('recharge_threshold', 'numeric(30, 12)');
    t.specificType('recharge_amount', 'numeric(30, 12)');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.unique(['customer_id', 'currency']);
  });
  await db.schema.createTable('wallet_grants', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.uuid('wallet_id').notNullable().references('wallets.id');
    t.text('grant_key').notNullable();
    t.text('source').notNullable(); // purchased | promotional | plan_included | goodwill
    t.specificType('amount', 'numeric(30, 12)').notNullable();
    t.specificType('remaining', 'numeric(30, 12)').notNullable();
    t.integer('priority').notNullable().defaultTo(0); // lower is used first
    t.timestamp('effective_at', { useTz: true }).notNullable();
    t.timestamp('expires_at', { useTz: true });
    t.jsonb('metric_codes'); // null: pays for any usage; else only these metrics' charges
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.unique(['wallet_id', 'grant_key']);
    t.index(['wallet_id', 'expires_at']);
  });
  await db.schema.createTable('wallet_ledger', (t) => {
    t.bigIncrements('id');
    t.uuid('wallet_id').notNullable().references('wallets.id');
    t.uuid('grant_id').references('wallet_grants.id');
    t.text('kind').notNullable(); // grant | consumption | expiry | reversal
    t.text('entry_key').notNullable();
    t.specificType('amount', 'numeric(30, 12)').notNullable(); // signed: + credits the wallet, - debits it
    t.specificType('balance_after', 'numeric(30, 12)').notNullable();
    t.text('description').notNullable().defaultTo('');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.unique(['wallet_id', 'entry_key']);
    t.index(['wallet_id', 'id']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('wallet_ledger');
  await db.schema.dropTable('wallet_grants');
  await db.schema.dropTable('wallets');
}
