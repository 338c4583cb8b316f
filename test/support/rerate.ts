import { Client, Connection } from '@temporalio/client';
import { RerateState, rerateStateQuery, rerateWorkflowId } from '../../workflows/definitions';
import { eventually } from './eventually';

/** A re-rating workflow's state once it stops moving (proposed and waiting, or done). */
export async function settledRerate(
  connection: Connection,
  rerateId: string,
  until: (state: RerateState) => boolean,
  wait: { timeoutMs: number; intervalMs: number } = { timeoutMs: 15_000, intervalMs: 50 },
): Promise<RerateState> {
  const handle = new Client({ connection }).workflow.getHandle(rerateWorkflowId(rerateId));
  return eventually(
    async () => {
      // Until the workflow has started, the query fails: that is "not yet", not an error.
      const state = await handle.query(rerateStateQuery).catch(() => undefined);
      return state && until(state) ? state : undefined;
    },
    `re-rating ${rerateId} to settle`,
    wait,
  );
}
