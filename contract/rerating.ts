/** Re-rating a finalized invoice: propose, decide, finalize. Every step answers with the re-rating's state. */

import type { RerateRefundOutcome, RerateStatus } from '../domain/rerating';

export type { RerateStatus };

/** The workflow id of a re-rating (one workflow per re-rating request): the API starts it, the janitor looks it up. */
export function rerateWorkflowId(rerateId: string): string {
  return `rerate:${rerateId}`;
}

/** The re-rating workflow's state and query result, and what each re-rating activity returns. */
export interface RerateState {
  readonly rerateId: string;
  readonly status: RerateStatus;
  readonly outcome: 'adjustment' | 'credit' | 'none';
  readonly total: string;
  readonly resultInvoiceId: string | null;
}

export interface RerateRequest {
  readonly rerateId: string;
}

/** A finance decision, or `approved: null` when the proposal expired without one. */
export interface RerateDecisionRecord {
  readonly rerateId: string;
  readonly approved: boolean | null;
  readonly by: string;
  readonly reason: string;
}

/** The deterministic failure that ended a re-rating's workflow: its type (a stable code) and message. */
export interface RerateFailureRecord {
  readonly rerateId: string;
  readonly code: string;
  readonly message: string;
}

/** What became of one credit note a re-rating issued (domain/rerating.ts rerateRefundOutcome). */
export type { RerateRefundOutcome };

/** Sends every pending refund of a re-rating's credit notes, each under its own key; what each became. */
export interface RerateRefundsResult {
  readonly refunds: ReadonlyArray<{ readonly creditNoteId: string; readonly outcome: RerateRefundOutcome }>;
}
