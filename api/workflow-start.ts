/**
 * Starting a workflow for a row that has just committed (a subscription, a re-rating).
 *
 * A workflow's first steps read its row. Started inside the insert's transaction, its first activity could run
 * before the commit, find nothing, and fail for good (the lifecycle simulation caught a subscription that never
 * billed this way); so the row commits first and the workflow, whose id the row fixes, starts after. If the start
 * fails, the row is removed when Temporal confirms no workflow exists; when Temporal cannot say (unreachable), the
 * row stays and a repeat of the request with the same Idempotency-Key starts the workflow. The id is never reused
 * (REJECT_DUPLICATE at the call sites), so a repeat after the workflow ended starts nothing.
 */
import { Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { ApiProblem, unavailableProblemOf } from './problem';
import { withTemporalDeadline } from './temporal-deadline';

export interface CommittedRowStart {
  readonly workflowId: string;
  /** Starts the workflow (with REJECT_DUPLICATE: its id is never reused). */
  readonly start: () => Promise<unknown>;
  /** Removes the committed row once Temporal confirms its workflow never started. */
  readonly removeRow: () => Promise<unknown>;
}

/** Starts the row's workflow unless it exists already; on failure answers 503 (or workflow_unavailable). */
export async function startForCommittedRow(temporal: Client, row: CommittedRowStart): Promise<void> {
  try {
    await withTemporalDeadline(temporal, row.start);
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return; // a repeat: the first attempt started it
    if (await workflowSurelyAbsent(temporal, row.workflowId)) await row.removeRow();
    throw unavailableProblemOf(error) ?? new ApiProblem('workflow_unavailable', `could not start the workflow: ${(error as Error).message}`);
  }
}

/** True only when Temporal answers that the workflow does not exist; false when it exists or Temporal cannot say. */
async function workflowSurelyAbsent(temporal: Client, workflowId: string): Promise<boolean> {
  try {
    await withTemporalDeadline(temporal, () => temporal.workflow.getHandle(workflowId).describe());
    return false;
  } catch (error) {
    return (error as Error).name === 'WorkflowNotFoundError';
  }
}
