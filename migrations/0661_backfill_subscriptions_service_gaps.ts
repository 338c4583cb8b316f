import type { Knex } from 'knex';

/**
 * The service gaps of subscriptions won back before migration 0660 (their rows forgot them): each stretch from a
 * usage close's end to the next close's start (or, not closed yet, to the current period's start) in which the
 * customer accepted a win-back offer. No close can claim it any more (a close claims its own period only, and later
 * ones start after it), so usage stamped there was never billable. Only stretches holding an accepted win-back:
 * a hole between closures for another reason (a period in its grace window while an immediate change closed the
 * next one's first stretch already) is still to be closed and billed.
 */
export async function up(db: Knex): Promise<void> {
  await backfillServiceGaps(db);
}

/** Forward-only: the gaps stay (0660's down drops them with the column). */
export async function down(): Promise<void> {}

/** Exported for its test (test/integration/service-gaps-backfill.test.ts): the migration runs on an empty database there. */
export async function backfillServiceGaps(db: Knex): Promise<void> {
  await db.raw(`
    WITH closed AS (
      SELECT subscription_id, period_start,
             max(period_end) OVER (PARTITION BY subscription_id ORDER BY period_start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS covered_until,
             lead(period_start) OVER (PARTITION BY subscription_id ORDER BY period_start) AS next_start
        FROM usage_period_closures
    ),
    holes AS (
      SELECT subscription_id, covered_until AS "from", next_start AS until FROM closed WHERE next_start > covered_until
      UNION ALL
      SELECT s.id, last.covered_until, s.current_period_start
        FROM subscriptions s
        JOIN (SELECT subscription_id, max(period_end) AS covered_until FROM usage_period_closures GROUP BY subscription_id) last ON last.subscription_id = s.id
       WHERE s.status <> 'canceled' AND s.current_period_start > last.covered_until
    ),
    restarts AS (
      SELECT h.subscription_id, range_agg(tstzrange(h."from", h.until)) AS gaps
        FROM holes h
       WHERE EXISTS (SELECT 1 FROM customer_offers o
                      WHERE o.subscription_id = h.subscription_id AND o.kind = 'win_back' AND o.answer = 'accepted'
                        AND o.answered_at >= h."from" AND o.answered_at <= h.until)
       GROUP BY h.subscription_id
    )
    UPDATE subscriptions s SET service_gaps = s.service_gaps + r.gaps FROM restarts r WHERE s.id = r.subscription_id`);
}
