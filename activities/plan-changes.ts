import type { PlanChangeIntentRecord, RecordedPlanChange } from '../contract/subscription';
import type { Database } from '../store/database';
import { recordPlanChangeOnce } from '../store/plan-changes';

export function createPlanChangeActivities(db: Database) {
  return {
    /**
     * The first step of an immediate plan change: records it once per request and returns the stored instant,
     * so a retried workflow task closes the same usage stretch and finds the proration invoice it already wrote.
     */
    async recordPlanChange(change: PlanChangeIntentRecord): Promise<RecordedPlanChange> {
      const row = await recordPlanChangeOnce(db, { ...change, changeAt: new Date(change.changeAt) });
      return { changeAt: row.change_at.toISOString() };
    },
  };
}
