import type { Knex } from 'knex';

/**
 * The stretches in which a subscription gave no service and no invoice bills: from the end a cancellation billed to
 * the instant a win-back restarted it (store/subscriptions.ts writes one as the row leaves `canceled`). Before, the
 * restart cleared the usage end and the row forgot the stretch: usage stamped there was accepted and never billed.
 * A multirange holds any number of them (a subscription can be won back more than once); adding one is a union, so
 * a status change recorded twice leaves the same value. Empty for a subscription never restarted.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(`ALTER TABLE subscriptions ADD COLUMN service_gaps tstzmultirange NOT NULL DEFAULT '{}'`);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('ALTER TABLE subscriptions DROP COLUMN service_gaps');
}
