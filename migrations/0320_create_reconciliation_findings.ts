import type { Knex } from 'knex';

/**
 * What the janitor (workflows/janitor.ts) found: one row per condition per subject. While the condition lasts the
 * row stays open (resolved_at null) and each run moves last_seen; once a run no longer sees it, resolved_at is set.
 * At most one open finding per (kind, subject), so repeated runs update instead of piling up rows.
 */
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('reconciliation_findings', (t) => {
    t.uuid('id').primary().defaultTo(db.raw('gen_random_uuid()'));
    t.text('kind').notNullable(); // unknown_payment | uncollected_invoice | period_not_closed | needs_attention
    t.text('subject_type').notNullable(); // payment | invoice | subscription
    t.uuid('subject_id').notNullable();
    t.text('detail').notNullable();
    t.boolean('repaired').notNullable().defaultTo(false); // the janitor fixed it (collected, settled)
    t.timestamp('first_seen', { useTz: true }).notNullable();
    t.timestamp('last_seen', { useTz: true }).notNullable();
    t.timestamp('resolved_at', { useTz: true });
    t.index(['resolved_at', 'kind']);
  });
  await db.raw('CREATE UNIQUE INDEX reconciliation_findings_one_open ON reconciliation_findings (kind, subject_id) WHERE resolved_at IS NULL');
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('reconciliation_findings');
}
