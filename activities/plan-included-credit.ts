/**
 * The plan's credit bucket recorded as a plan_included wallet grant (issue 12, docs/wallets.md), from the usage
 * lines the invoice already has: the bucket is applied by rating as before, so the invoice cannot change; the
 * ledger learns what the bucket's "Included usage credit" line covered and that the rest expired.
 */
import type { DraftInvoiceLine, PeriodBounds } from '../domain/invoice';
import { sumMoney, toDecimal } from '../domain/money';
import type { PlanRow } from '../store/catalog';
import { recordPlanIncludedCredit } from '../store/plan-included-credits';
import type { Transaction } from '../store/transactions';

export async function recordPlanBucket(
  trx: Transaction,
  request: { customerId: string; subscriptionId: string; plan: PlanRow; bucket: string | undefined; usagePeriod: PeriodBounds; usageLines: readonly DraftInvoiceLine[] },
): Promise<void> {
  // The stretch's bucket: its share of the plan's when a plan change cut the period (domain/allowances.ts).
  const bucket = request.bucket;
  if (!bucket) return;
  // Rating's usage lines carry one credit line: the bucket's (what it covered, negated).
  const applied = sumMoney(request.usageLines.filter((line) => line.kind === 'credit').map((line) => toDecimal(line.amount).neg()));
  await recordPlanIncludedCredit(trx, {
    customerId: request.customerId,
    currency: request.plan.currency,
    subscriptionId: request.subscriptionId,
    period: request.usagePeriod,
    bucket,
    applied: applied.toString(),
  });
}
