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
import { deterministicFailureOf } from './subscription/deterministic';
import {
  decideRerateUpdate,
  RerateDecision,
  RerateState,
  rerateStateQuery,
  RerateWorkflowInput,
  SEARCH_ATTRIBUTES,
} from './definitions';

const { chargeInvoice, refundCreditNote } = remote;

/**
 * Activity failures: a transient one is retried by the activity; a deterministic one (classified non-retryable:
 * the re-rating's data is wrong) ends this workflow as failed with its type, shown to ops as `rerate_failed`.
 * Each step is one transaction, so nothing half-done is left: the row keeps its last recorded status, and finance
 * asks for a new re-rating once the data is fixed. An adjustment invoice whose charge failed stays open, and the
 * janitor collects open invoices with no collection in flight.
 */
export async function rerateWorkflow(input: RerateWorkflowInput): Promise<RerateState> {
  try {
    return await rerate(input);
  } catch (error) {
    if (deterministicFailureOf(error)) upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.status, value: 'rerate_failed' }]);
    throw error;
  }
}

async function rerate(input: RerateWorkflowInput): Promise<RerateState> {
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
