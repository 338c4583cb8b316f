import type { Knex } from 'knex';

/**
 * The running totals (store/rollups.ts) are keyed by a fixed-size digest of their dimension key, not the key itself.
 * A btree entry holds at most 2704 bytes; ingestion bounds the key of metrics that exist when an event arrives
 * (indexed_value_too_long), but a metric created later groups (or counts distinct values of) events stored
 * unbounded, and seeding its totals failed (54000) on every read: the customer's usage page, thresholds and period
 * close. So the primary keys hold sha256 digests and the full key (and counted value) stay plain columns:
 *
 * - usage_rollup_key_digest(text): the one definition of the digest (sha256 of the UTF-8 bytes).
 * - usage_rollups.dimension_digest and usage_rollup_distinct_values.dimension_digest / value_digest: columns the
 *   database computes from dimension_key / value (GENERATED ALWAYS, so no writer can store another digest), in
 *   the primary keys in place of dimension_key / value.
 * - usage_rollups_totals: the metric totals (dimension_key '') by window and metric, so a total's lookup stays an
 *   index lookup however many combinations a metric has (store/entitlements.ts reads it on the ingestion path).
 *
 * Existing rows get their digests when the columns are added (a table rewrite). A metric seeded before seeding
 * wrote its total row (at zero) gets that row now, as seeding writes it today.
 */
export async function up(db: Knex): Promise<void> {
  // IMMUTABLE: convert_to is only STABLE because it looks up a conversion; a database's encoding never changes.
  await db.raw(`CREATE FUNCTION usage_rollup_key_digest(key text) RETURNS bytea
                LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
                AS $$ SELECT sha256(convert_to(key, 'UTF8')) $$`);
  await db.raw(`ALTER TABLE usage_rollups
                ADD COLUMN dimension_digest bytea GENERATED ALWAYS AS (usage_rollup_key_digest(dimension_key)) STORED`);
  await db.raw(`ALTER TABLE usage_rollups DROP CONSTRAINT usage_rollups_pkey,
                ADD CONSTRAINT usage_rollups_pkey PRIMARY KEY (window_id, metric_id, dimension_digest)`);
  await db.raw(`CREATE INDEX usage_rollups_totals ON usage_rollups (window_id, metric_id) WHERE dimension_key = ''`);
  await db.raw(`ALTER TABLE usage_rollup_distinct_values
                ADD COLUMN dimension_digest bytea GENERATED ALWAYS AS (usage_rollup_key_digest(dimension_key)) STORED,
                ADD COLUMN value_digest bytea GENERATED ALWAYS AS (usage_rollup_key_digest(value)) STORED`);
  await db.raw(`ALTER TABLE usage_rollup_distinct_values DROP CONSTRAINT usage_rollup_distinct_values_pkey,
                ADD CONSTRAINT usage_rollup_distinct_values_pkey PRIMARY KEY (window_id, metric_id, dimension_digest, value_digest)`);
  await db.raw(`INSERT INTO usage_rollups (window_id, metric_id, dimension_key)
                SELECT wm.window_id, wm.metric_id, '' FROM usage_rollup_window_metrics wm
                ON CONFLICT (window_id, metric_id, dimension_digest) DO NOTHING`);
}

/** Back to keys by value: fails (54000) if a key past the btree bound was stored since; forget those windows first. */
export async function down(db: Knex): Promise<void> {
  await db.raw(`ALTER TABLE usage_rollup_distinct_values DROP CONSTRAINT usage_rollup_distinct_values_pkey,
                ADD CONSTRAINT usage_rollup_distinct_values_pkey PRIMARY KEY (window_id, metric_id, dimension_key, value)`);
  await db.raw('ALTER TABLE usage_rollup_distinct_values DROP COLUMN value_digest, DROP COLUMN dimension_digest');
  await db.raw('DROP INDEX usage_rollups_totals');
  await db.raw(`ALTER TABLE usage_rollups DROP CONSTRAINT usage_rollups_pkey,
                ADD CONSTRAINT usage_rollups_pkey PRIMARY KEY (window_id, metric_id, dimension_key)`);
  await db.raw('ALTER TABLE usage_rollups DROP COLUMN dimension_digest');
  await db.raw('DROP FUNCTION usage_rollup_key_digest(text)');
}
