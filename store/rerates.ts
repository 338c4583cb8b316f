/** Manual re-rating requests as stored (table `rerates`, migration 0019). */
import type { DraftInvoiceLine, PeriodBounds } from '../domain/invoice';

export type RerateStatus = 'computing' | 'proposed' | 'nothing_to_do' | 'approved' | 'rejected' | 'finalized' | 'expired';

export interface RerateProposal {
  readonly usagePeriod: PeriodBounds;
  readonly planId: string;
  readonly lines: DraftInvoiceLine[];
  readonly total: string;
  readonly outcome: 'adjustment' | 'credit' | 'none';
  /** Late events this proposal bills: exactly these are claimed when it is carried out. */
  readonly lateEventIds: string[];
}

export interface RerateRow {
  id: string;
  invoice_id: string;
  subscription_id: string;
  customer_id: string;
  status: RerateStatus;
  requested_by: string;
  reason: string;
  corrected_plan_id: string | null;
  include_late_usage: boolean;
  proposal: RerateProposal | null;
  decided_by: string | null;
  decision_reason: string | null;
  result_invoice_id: string | null;
  decided_at: Date | null;
}

