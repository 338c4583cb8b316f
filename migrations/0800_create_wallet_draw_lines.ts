import type { Knex } from 'knex';

/**
 * What each wallet draw paid of each invoice line, per grant (docs/wallets.md, "Re-rating"). The ledger keeps one
 * consumption entry per grant and draw, not which lines it paid: a re-rating that lowered calls a threshold invoice
 * had charged to the card gave the credit to a tokens-only grant that had paid the tokens. A re-rating now gives back
 * to the grants that paid the lowered line, up to what each paid of it, and the rest is refunded in cash.
 *
 * - part: `draw` for what the draw paid; a give-back's reversal key (`rerate:<id>`) for what it returned of the line.
 * - grant_id: the grant that paid (null: the overdraft), also for a give-back that went to a goodwill grant in its place.
 * - line_key: the line's identity as re-rating names it (domain/rerating.ts lineKey: `usage:<metric>[:<combination>]`).
 * Draws written before this table have no rows: re-rating falls back to the grants whose scope covers the line.
 * Written in the transaction of the ledger entries they split, once (the unique key, as the entry keys).
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('wallet_draw_lines', (t) => {
    t.bigIncrements('id');
    t.uuid('wallet_id').notNullable().references('wallets.id');
    t.text('draw_key').notNullable();
    t.text('part').notNullable();
    t.uuid('grant_id').references('wallet_grants.id');
    t.text('line_key').notNullable();
    t.specificType('amount', 'numeric(30, 12)').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(db.fn.now());
  });
  await db.raw('ALTER TABLE wallet_draw_lines ADD CONSTRAINT wallet_draw_lines_amount_positive CHECK (amount > 0)');
  // One row per (draw, part, payer, line); the overdraft (null grant) too, hence NULLS NOT DISTINCT (Postgres 15+).
  await db.raw('CREATE UNIQUE INDEX wallet_draw_lines_once ON wallet_draw_lines (wallet_id, draw_key, part, grant_id, line_key) NULLS NOT DISTINCT');
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('wallet_draw_lines');
}
