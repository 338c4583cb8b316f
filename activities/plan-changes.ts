import { ApplicationFailure } from '@temporalio/activity';
import type { PlanChangeIntentRecord, RecordedPlanChange } from '../contract/subscription';
import type { Database } from '../store/database';
import { PLAN_CHANGE_ALREADY_MADE, PlanChangeAlreadyMade, recordPlanChangeOnce } from '../store/plan-changes';

export function createPlanChangeActivities(db: Database) {
  return {
    /**
     * The first step of an immediate plan change: records it once per request and returns the stored instant,
     * so a retried workflow task closes the same usage stretch and finds the proration invoice it already wrote.
     */
    async recordPlanChange(change: PlanChangeIntentRecord): Promise<RecordedPlanChange> {
      try {
        const row = await recordPlanChangeOnce(db, { ...change, changeAt: new Date(change.changeAt) });
        return { changeAt: row.change_at.toISOString() };
      } catch (error) {
        // A request repeated in a later run after its change was superseded: nothing may take effect again (the
        // workflow fails this update before anything happens; billing goes on). Deterministic: not retried.
        if (error instanceof PlanChangeAlreadyMade) throw ApplicationFailure.nonRetryable(error.message, PLAN_CHANGE_ALREADY_MADE);
        throw error;
      }
    },
  };
}
