import type { Knex } from 'knex';

/**
 * Top-ups and auto-recharge (issue 12 point 3, docs/wallets.md).
 *
 * - wallet_top_ups: one row per purchase of credits, written before anything is charged (intent first). Its
 *   invoice and its `purchased` grant are keyed on the row, so a retried step finds what it already wrote.
 *   `request_key` is the purchase's identity: the scoped Idempotency-Key of an API top-up, or
 *   `recharge:<crossing number>` for an automatic recharge, so two triggers racing for one threshold crossing
 *   insert one row.
 * - wallet_balance_watch: per wallet, whether each threshold (recharge, low balance, depleted) is armed and how
 *   many times it has been crossed. A crossing disarms it; the balance back at or above the threshold re-arms it.
 * - wallet_grant_notices: the `grant.expiring` notice sent for a grant (once per grant).
 * - wallets.grant_expiry_notice: how long before a grant expires the notice goes out (ISO 8601 duration).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('wallet_top_ups', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.uuid('wallet_id').notNullable().references('wallets.id');
    t.uuid('customer_id').notNullable().references('customers.id');
    t.text('currency').notNullable();
    t.text('kind').notNullable(); // top_up | recharge
    t.text('request_key').notNullable();
    t.specificType('amount', 'numeric(30, 12)').notNullable();
    t.integer('priority').notNullable().defaultTo(0);
    t.timestamp('expires_at', { useTz: true });
    t.text('status').notNullable().defaultTo('pending'); // pending | paid | declined
    t.uuid('invoice_id').references('invoices.id');
    t.uuid('grant_id').references('wallet_grants.id');
    t.text('decline_code');
    t.text('requested_by').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
    t.timestamp('settled_at', { useTz: true });
    t.unique(['wallet_id', 'request_key']);
    t.unique(['invoice_id']);
  });
  await db.raw(`ALTER TABLE wallet_top_ups ADD CONSTRAINT wallet_top_ups_amount_positive CHECK (amount > 0)`);
  await db.raw(`CREATE INDEX wallet_top_ups_pending ON wallet_top_ups (customer_id) WHERE status = 'pending'`);

  await db.schema.createTable('wallet_balance_watch', (t) => {
    t.uuid('wallet_id').primary().references('wallets.id');
    t.boolean('recharge_armed').notNullable().defaultTo(true);
    t.integer('recharge_crossings').notNullable().defaultTo(0);
    // As domain/wallet-recharge.ts INITIAL_WATCH: the webhooks arm once the balance is seen at or above them.
    t.boolean('low_balance_armed').notNullable().defaultTo(false);
    t.integer('low_balance_crossings').notNullable().defaultTo(0);
    t.boolean('depleted_armed').notNullable().defaultTo(false);
    t.integer('depleted_crossings').notNullable().defaultTo(0);
    t.specificType('last_available', 'numeric(30, 12)');
    t.timestamp('checked_at', { useTz: true });
  });

  await db.schema.createTable('wallet_grant_notices', (t) => {
    t.uuid('grant_id').primary().references('wallet_grants.id');
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('notified_at', { useTz: true }).notNullable();
  });

  await db.schema.alterTable('wallets', (t) => {
    t.text('grant_expiry_notice').notNullable().defaultTo('P7D');
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('wallets', (t) => t.dropColumn('grant_expiry_notice'));
  await db.schema.dropTable('wallet_grant_notices');
  await db.schema.dropTable('wallet_balance_watch');
  await db.schema.dropTable('wallet_top_ups');
}
