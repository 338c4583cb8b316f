/**
 * One workflow per re-rating request (id `rerate:<id>`), visible in the Temporal UI next to its subscription
 * (same BillingCustomerId; the subscription id in the memo):
 *
 *   propose (recompute the period, diff against what was invoiced)
 *     -> nothing to do: done
 *     -> wait for finance: approve | reject | expiry
 *          approve -> finalize (adjustment invoice or credit notes) -> collect, or refund every note
 */
import { condition, log, patched, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { addIntervals, parseInterval } from '../domain/periods';
import { local, remote } from './activity-stubs';
import { RERATE_FAILURE_RECORDED, RERATE_REFUNDS_EVERY_NOTE } from './rerate-patch-ids';
import { DeterministicFailure, deterministicFailureOf } from './subscription/deterministic';
import {
  decideRerateUpdate,
  RerateDecision,
  RerateState,
  rerateStateQuery,
  RerateWorkflowInput,
  SEARCH_ATTRIBUTES,
} from './definitions';

const { chargeInvoice, refundCreditNote, refundRerateCreditNotes } = remote;

/**
 * Activity failures: a transient one is retried by the activity; a deterministic one (classified non-retryable:
 * the re-rating's data is wrong) ends this workflow as failed with its type, shown to ops as `rerate_failed`, and
 * to finance as the row's status `failed` with that type as its code. Each step is one transaction, so nothing
 * half-done is left, and finance asks for a new re-rating once the data is fixed. An adjustment invoice whose charge
 * failed stays open (the row stays `finalized`), and the janitor collects open invoices with no collection in flight.
 */
export async function rerateWorkflow(input: RerateWorkflowInput): Promise<RerateState> {
  try {
    return await rerate(input);
  } catch (error) {
    const failure = deterministicFailureOf(error);
    if (failure) {
      upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.status, value: 'rerate_failed' }]);
      if (patched(RERATE_FAILURE_RECORDED)) await recordFailure(input.rerateId, failure);
    }
    throw error;
  }
}

/**
 * Keeps the failure on the row, so that finance sees it through the API. Recording it may fail deterministically too
 * (the row gone): the workflow still fails with the failure that ended it, not this one, and the worker logs it.
 */
async function recordFailure(rerateId: string, failure: DeterministicFailure): Promise<void> {
  try {
    await local.recordRerateFailure({ rerateId, code: failure.type, message: failure.message });
  } catch (error) {
    const unrecorded = deterministicFailureOf(error);
    if (!unrecorded) throw error;
    log.error('re-rating failure not recorded on its row', { rerateId, failure: failure.type, type: unrecorded.type, message: unrecorded.message });
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
  if (state.resultInvoiceId && state.outcome === 'credit') {
    // Every note's refund now, not only the first's (the others waited for the janitor); each under its own key.
    if (patched(RERATE_REFUNDS_EVERY_NOTE)) await refundRerateCreditNotes({ rerateId: input.rerateId });
    else await refundCreditNote({ creditNoteId: state.resultInvoiceId });
  }
  return state;
}
