import type { Knex } from 'knex';

/**
 * Every stretch in which a subscription's usage was capped (its plan's hard cap reached): from the capped period's
 * start to its end, or to the instant a plan change lifted the cap. Ingestion judged the cap by the request's arrival
 * against `usage_capped_until`, the latest cap only: an event stamped in a capped period and sent after it ended was
 * billed above the cap, and one stamped in an uncapped period still in its grace window was refused (usage lost)
 * once the next period was capped. It now refuses exactly the events stamped inside a stretch kept here, whenever
 * they arrive. `usage_capped_until` stays: the spending check reads it to tell whether it still has to cap.
 *
 * The cap each row holds now is kept as a stretch: the period the row shows when the cap ends there, the next one
 * when it ends later (set in the usage grace window), else the usage period closed at that end. A cap of an earlier
 * period that no closure names is not found again: its period is over, and the arrival rule accepted its usage too.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(`ALTER TABLE subscriptions ADD COLUMN usage_capped_stretches tstzmultirange NOT NULL DEFAULT '{}'`);
  await db.raw(`
    WITH capped AS (
      SELECT s.id, s.usage_capped_until AS until,
             CASE WHEN s.current_period_end = s.usage_capped_until THEN s.current_period_start
                  WHEN s.current_period_end < s.usage_capped_until THEN s.current_period_end
                  ELSE (SELECT min(c.period_start) FROM usage_period_closures c WHERE c.subscription_id = s.id AND c.period_end = s.usage_capped_until)
             END AS since
        FROM subscriptions s
       WHERE s.usage_capped_until IS NOT NULL
    )
    UPDATE subscriptions s
       SET usage_capped_stretches = tstzmultirange(tstzrange(capped.since, capped.until))
      FROM capped
     WHERE s.id = capped.id AND capped.since < capped.until`);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('ALTER TABLE subscriptions DROP COLUMN usage_capped_stretches');
}
