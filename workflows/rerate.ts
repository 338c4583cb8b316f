/**
 * One workflow per re-rating request (id `rerate:<id>`), visible in the Temporal UI next to its subscription
 * (same BillingCustomerId; the subscription id in the memo):
 *
 *   propose (recompute the period, diff against what was invoiced)
 *     -> nothing to do: done
 *     -> wait for finance: approve | reject | expiry
 *          approve -> finalize (adjustment invoice or credit note) -> collect or refund
 */
import { condition, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { addIntervals, parseInterval } from '../domain/periods';
import { local, remote } from './activity-stubs';
import {
  decideRerateUpdate,
  RerateDecision,
  RerateState,
  rerateStateQuery,
  RerateWorkflowInput,
  SEARCH_ATTRIBUTES,
} from './definitions';

const { chargeInvoice, refundCreditNote } = remote;

export async function rerateWorkflow(input: RerateWorkflowInput): Promise<RerateState> {
  let state: RerateState = { rerateId: input.rerateId, status: 'computing', outcome: 'none', total: '0', resultInvoiceId: null };
  let decision: RerateDecision | null = null;
  setHandler(rerateStateQuery, () => state);

  const show = (status: string): void => upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.status, value: `rerate_${status}` }]);

  setHandler(
    decideRerateUpdate,
    async (request) => {
      decision = request;
      await condition(() => state.status !== 'proposed');
      return state;
    },
    {
      validator: (request: RerateDecision) => {
        if (state.status !== 'proposed' || decision) throw new Error('rerate_not_awaiting_decision');
        if (!request.reason.trim()) throw new Error('decision_reason_required');
      },
    },
  );

  state = await local.proposeRerate({ rerateId: input.rerateId });
  show(state.status);
  if (state.status !== 'proposed') return state;

  const expiresAt = addIntervals(new Date(), parseInterval(input.decisionWindow), 1);
  await condition(() => decision !== null, Math.max(0, expiresAt.getTime() - Date.now()), { summary: 'approval window' });
  const made = decision as RerateDecision | null;
  state = await local.recordRerateDecision({
    rerateId: input.rerateId,
    approved: made ? made.approve : null,
    by: made?.by ?? 'workflow',
    reason: made?.reason ?? 'no decision before the proposal expired',
  });
  show(state.status);
  if (state.status !== 'approved') return state;

  state = await local.finalizeRerate({ rerateId: input.rerateId });
  show(state.status);
  if (state.resultInvoiceId && state.outcome === 'adjustment') await chargeInvoice({ invoiceId: state.resultInvoiceId, attempt: 1 });
  if (state.resultInvoiceId && state.outcome === 'credit') await refundCreditNote({ creditNoteId: state.resultInvoiceId });
  return state;
}
