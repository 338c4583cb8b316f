import type { Knex } from 'knex';

/**
 * A plan change scheduled for the period's end (`effective: "period_end"`), as the metered-overlap check reads it:
 * the plan and the instant it takes effect. Before, only the workflow knew it until the boundary, so a subscription
 * created meanwhile for the customer was checked against the plan in force and could price the same event type as
 * the scheduled plan from the boundary on (its usage billed twice or by neither). Written by the API under the
 * customer's lock once the workflow accepted the change; cleared when it is withdrawn, replaced, applied (any plan
 * switch) or the subscription is canceled (store/metered-overlaps.ts). Null on rows whose change was scheduled before
 * this migration: only the workflow holds those (docs/api.md), and they take effect at their boundary as before.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw(`ALTER TABLE subscriptions ADD COLUMN scheduled_change_plan_id uuid REFERENCES plans(id),
                                          ADD COLUMN scheduled_change_at timestamptz,
                                          ADD CONSTRAINT subscriptions_scheduled_change_whole
                                              CHECK ((scheduled_change_plan_id IS NULL) = (scheduled_change_at IS NULL))`);
}

export async function down(db: Knex): Promise<void> {
  await db.raw('ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_scheduled_change_whole, DROP COLUMN scheduled_change_plan_id, DROP COLUMN scheduled_change_at');
}
