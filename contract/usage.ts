/** Usage: closing a stretch for invoicing, and rating the open stretch against spending limits. */

export interface UsagePeriodRequest {
  readonly subscriptionId: string;
  readonly periodStart: string;
  readonly periodEnd: string;
  /** The plan version whose metrics are claimed (after a plan change, the one in force for this stretch). */
  readonly planId?: string;
}

export interface UsagePeriodSummary {
  readonly closeId: string;
  readonly eventCount: number;
  /** metric code -> aggregated quantity */
  readonly quantities: Record<string, string>;
}

export interface SpendingCheckRequest {
  readonly subscriptionId: string;
  /** The open usage stretch: from its start up to `at`. */
  readonly from: string;
  readonly at: string;
  /** When the current period ends (a hard cap holds until then). */
  readonly periodEnd: string;
}

export interface SpendingCheckResult {
  readonly spend: string;
  readonly raised: string[];
  readonly capped: boolean;
}
