import type { Knex } from 'knex';

/**
 * Running totals (store/rollups.ts) now keep one row per combination of a grouped metric and never hold events a
 * closed usage period claimed. Windows seeded under the old rules lack the first and may hold the second, so all
 * are forgotten: the next read of each seeds it again from the raw events (one scan per window).
 */
export async function up(db: Knex): Promise<void> {
  await db('usage_rollup_distinct_values').delete();
  await db('usage_rollups').delete();
  await db('usage_rollup_window_metrics').delete();
}

export async function down(): Promise<void> {
  // Nothing to undo: forgotten totals are seeded again on read.
}
