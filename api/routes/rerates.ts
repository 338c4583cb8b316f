/**
 * Manual re-rating: finance asks (POST /v1/invoices/:id/rerate), a re-rating workflow proposes the difference,
 * finance decides (POST /v1/rerates/:id/approve | reject). The original invoice is never edited.
 */
import { Client, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { Request, Router } from 'express';
import { randomUUID } from 'node:crypto';
import { findPlanVersion } from '../../store/catalog';
import type { Database } from '../../store/database';
import { findInvoice } from '../../store/invoices';
import { writeAudit } from '../../store/outbox';
import { deleteUnstartedRerate, findRerate as findRerateRow, insertRerate, listRerateCreditNotes, type RerateCreditNoteRow, type RerateRow } from '../../store/rerates';
import { formatMoney, toDecimal } from '../../domain/money';
import { inTransaction } from '../../store/transactions';
import {
  decideRerateUpdate,
  RERATE_WORKFLOW_TYPE,
  rerateWorkflowId,
  RerateWorkflowInput,
  SEARCH_ATTRIBUTES,
} from '../../workflows/definitions';
import { billingTaskQueue } from '../../config/tuning';
import { keyNamesAnotherRequest, scopedRequestId, uuidFromRequestId } from '../idempotency';
import { startForCommittedRow } from '../workflow-start';
import { ApiProblem, isProblemCode } from '../problem';
import { RERATEABLE_INVOICE_KINDS, rerateRefundOutcome } from '../../domain/rerating';
import { rerateBody, rerateDecisionBody, uuidParam } from '../schemas';
import { declareRoutes } from '../route-declarations';

/** How long a proposal waits for finance before it expires. */
const DECISION_WINDOW = 'P30D';

const apiKeyIdOf = (req: Request): string | undefined => (req as Request & { apiKey?: { id: string } }).apiKey?.id;
const actor = (req: Request): string => apiKeyIdOf(req) ?? 'api';

export function rerateJson(row: RerateRow, notes: readonly RerateCreditNoteRow[] = []) {
  return {
    id: row.id,
    invoice_id: row.invoice_id,
    subscription_id: row.subscription_id,
    status: row.status,
    reason: row.reason,
    requested_by: row.requested_by,
    corrected_plan_id: row.corrected_plan_id,
    include_late_usage: row.include_late_usage,
    proposal: row.proposal && {
      usage_period: row.proposal.usagePeriod,
      outcome: row.proposal.outcome,
      total: row.proposal.total,
      lines: row.proposal.lines.map((line) => ({ kind: line.kind, metric_code: line.metricCode, description: line.description, quantity: line.quantity, amount: line.amount, breakdown: line.breakdown })),
      late_events: row.proposal.lateEventIds.length,
      wallet_credit_back: row.proposal.walletCreditBack ?? null,
      later_invoices_changed: (row.proposal.laterInvoicesChanged ?? []).map((later) => ({ invoice_id: later.invoiceId, usage_period: later.usagePeriod, total: later.total, outcome: later.outcome })),
    },
    decided_by: row.decided_by,
    decision_reason: row.decision_reason,
    result_invoice_id: row.result_invoice_id,
    // Each credit note it issued and what became of its money: the status stays `finalized` once carried out, a
    // refund the gateway refused (credited to the wallet instead) or still pending shows here.
    refunds: notes.map((note) => ({
      credit_note_id: note.credit_note_id,
      credit_note_number: note.credit_note_number,
      invoice_id: note.credited_invoice_id,
      amount: formatMoney(toDecimal(note.amount), note.currency),
      currency: note.currency,
      outcome: rerateRefundOutcome({ noteStatus: note.credit_note_status, refundStatus: note.refund_status, invoiceStatus: note.credited_invoice_status }),
      refund: note.refund_id
        ? { id: note.refund_id, status: note.refund_status!, amount: formatMoney(toDecimal(note.refund_amount!), note.currency), failure_code: note.refund_failure_code }
        : null,
    })),
    // Why a `failed` re-rating was never carried out (its workflow's deterministic failure); null otherwise.
    failure: row.status === 'failed' ? { code: row.failure_code!, message: row.failure_message! } : null,
    workflow_id: rerateWorkflowId(row.id),
  };
}

export function reratesRouter(db: Database, temporal: Client): Router {
  const routes = declareRoutes();

  routes.post('/invoices/:id/rerate', { allow: ['finance'] }, async (req, res) => {
    const body = rerateBody.parse(req.body);
    const id = uuidParam.safeParse(req.params.id);
    const invoice = id.success ? await findInvoice(db, id.data) : undefined;
    if (!invoice || !invoice.subscription_id || invoice.status === 'draft') throw new ApiProblem('invoice_not_found', `no finalized subscription invoice ${req.params.id}`);
    // Refused here, not by the workflow's first step: that left a row `computing` for good behind a 202.
    if (!RERATEABLE_INVOICE_KINDS.has(invoice.kind)) {
      throw new ApiProblem('invoice_not_rerateable', `invoice ${invoice.id} is a ${invoice.kind} invoice: re-rate the invoice that billed the whole period`);
    }
    let correctedPlanId: string | null = null;
    if (body.plan_code) {
      const plan = await findPlanVersion(db, body.plan_code, body.plan_version);
      if (!plan) throw new ApiProblem('plan_not_found', `no plan ${body.plan_code}`);
      if (plan.currency !== invoice.currency) throw new ApiProblem('currency_mismatch', `the plan bills in ${plan.currency}, the invoice is in ${invoice.currency}`);
      correctedPlanId = plan.id;
    }
    // The re-rating's identity comes from the request (API key and Idempotency-Key), not from chance: a repeat
    // whose first answer was never stored (the process died after the commit) finds the re-rating it started.
    const requestId = scopedRequestId(apiKeyIdOf(req), 'rerate', req.header('Idempotency-Key'));
    const rerateId = requestId ? uuidFromRequestId(requestId) : randomUUID();
    const input: RerateWorkflowInput = { rerateId, subscriptionId: invoice.subscription_id!, invoiceId: invoice.id, decisionWindow: DECISION_WINDOW };
    const workflowId = rerateWorkflowId(rerateId);
    // The request commits, then its workflow starts (api/workflow-start.ts says why in that order); a repeat whose
    // first attempt committed but never started the workflow starts it now.
    const start = (): Promise<void> =>
      startForCommittedRow(temporal, {
        workflowId,
        removeRow: () => deleteUnstartedRerate(db, rerateId),
        start: () =>
          temporal.workflow.start(RERATE_WORKFLOW_TYPE, {
            workflowId,
            taskQueue: billingTaskQueue(),
            args: [input],
            workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
            memo: { subscriptionId: invoice.subscription_id, invoiceId: invoice.id },
            typedSearchAttributes: [
              { key: SEARCH_ATTRIBUTES.customerId, value: invoice.customer_id },
              { key: SEARCH_ATTRIBUTES.status, value: 'rerate_computing' },
            ],
          }),
      });
    const started = requestId ? await findRerateRow(db, rerateId) : undefined;
    if (started) {
      if (started.invoice_id !== invoice.id || started.corrected_plan_id !== correctedPlanId || started.include_late_usage !== body.include_late_usage) {
        throw keyNamesAnotherRequest(req.header('Idempotency-Key'), `re-rating ${started.id} of another invoice or with other terms`);
      }
      await start();
      return void res.status(202).json(rerateJson(started));
    }
    const row = await inTransaction(db, async (trx) => {
      const inserted = await insertRerate(trx, {
        id: rerateId,
        invoiceId: invoice.id,
        subscriptionId: invoice.subscription_id!,
        customerId: invoice.customer_id,
        requestedBy: actor(req),
        reason: body.reason,
        correctedPlanId,
        includeLateUsage: body.include_late_usage,
      });
      await writeAudit(trx, { actor: actor(req), action: 'rerate.requested', subjectType: 'invoice', subjectId: invoice.id, reason: body.reason, details: { rerateId, correctedPlanId, includeLateUsage: body.include_late_usage } });
      return inserted;
    });
    await start();
    res.status(202).json(rerateJson(row));
  });

  routes.get('/rerates/:id', { allow: ['finance'] }, async (req, res) => {
    const rerate = await findRerate(db, req.params.id);
    res.json(rerateJson(rerate, await listRerateCreditNotes(db, rerate)));
  });

  for (const decision of ['approve', 'reject'] as const) {
    routes.post(`/rerates/:id/${decision}`, { allow: ['finance'] }, async (req, res) => {
      const body = rerateDecisionBody.parse(req.body);
      const rerate = await findRerate(db, req.params.id);
      // Only a proposal waits for a decision. Once its workflow has ended (nothing to do, carried out, rejected,
      // expired, failed), an update on it fails with "not found": that was a 500 to a finance double-click.
      const notAwaiting = (status: string) => new ApiProblem('rerate_not_awaiting_decision', `this re-rating cannot be decided: it is ${status}`);
      if (rerate.status !== 'proposed') throw notAwaiting(rerate.status);
      try {
        await temporal.workflow.getHandle(rerateWorkflowId(rerate.id)).executeUpdate(decideRerateUpdate, {
          args: [{ approve: decision === 'approve', by: actor(req), reason: body.reason }],
        });
      } catch (error) {
        const code = error instanceof WorkflowUpdateFailedError ? error.cause?.message : undefined;
        if (code && isProblemCode(code)) throw new ApiProblem(code, `this re-rating cannot be decided: ${code.replace(/_/g, ' ')}`);
        // Ended between the read above and the update (its decision window expired, or ops terminated it).
        if (error instanceof WorkflowNotFoundError) throw notAwaiting((await findRerate(db, rerate.id)).status);
        throw error;
      }
      const decided = await findRerate(db, rerate.id);
      res.json(rerateJson(decided, await listRerateCreditNotes(db, decided)));
    });
  }

  return routes.router;
}

async function findRerate(db: Database, id: string): Promise<RerateRow> {
  const parsed = uuidParam.safeParse(id);
  const row = parsed.success ? await findRerateRow(db, parsed.data) : undefined;
  if (!row) throw new ApiProblem('rerate_not_found', `no re-rating ${id}`);
  return row;
}
