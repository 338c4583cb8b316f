import type { Knex } from 'knex';

/**
 * A re-rating whose workflow failed deterministically (an uncollectible invoice to credit, a stale proposal, bad data)
 * is `failed`, with the failure's stable code and message. Before, its row kept its last status (`approved`,
 * `computing`) for good and finance waited for a correction that never came. The check keeps the code and the
 * status together: a failed row always says why, and no other row carries a failure. `status` has no CHECK of its
 * own (0019), so `failed` needs no change there.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(`
    ALTER TABLE rerates
      ADD COLUMN failure_code text,
      ADD COLUMN failure_message text,
      ADD CONSTRAINT rerates_failure_iff_failed CHECK ((status = 'failed') = (failure_code IS NOT NULL AND failure_message IS NOT NULL))`);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('ALTER TABLE rerates DROP CONSTRAINT rerates_failure_iff_failed');
  // The code before knows no `failed`: a failed row goes back to the last status it recorded (what that code showed).
  await db.raw(`
    UPDATE rerates
       SET status = CASE WHEN decided_at IS NOT NULL THEN 'approved' WHEN proposal IS NOT NULL THEN 'proposed' ELSE 'computing' END
     WHERE status = 'failed'`);
  await db.raw('ALTER TABLE rerates DROP COLUMN failure_code, DROP COLUMN failure_message');
}
