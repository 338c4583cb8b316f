import type { Knex } from 'knex';

/**
 * When a subscription's usage block (suspended, or paused under the reject policy) began, and the blocks it has
 * left behind. Ingestion judged a block by the request's arrival: an event stamped before a suspension and sent
 * during it was refused although the period that covers it bills it (usage lost), and one stamped during a pause that
 * refuses usage, sent after the resume, was accepted and billed. It now judges by the event's time: refused from
 * `usage_blocked_since` on while blocked, and inside any past block (`usage_blocked_stretches`). Null and empty for
 * a subscription never blocked; a row blocked before this column has no start and refuses every instant, as before.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(`ALTER TABLE subscriptions ADD COLUMN usage_blocked_since timestamptz,
                                          ADD COLUMN usage_blocked_stretches tstzmultirange NOT NULL DEFAULT '{}'`);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('ALTER TABLE subscriptions DROP COLUMN usage_blocked_since, DROP COLUMN usage_blocked_stretches');
}
