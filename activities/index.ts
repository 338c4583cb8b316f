import type { BillingActivities } from '../contract/activities';
import type { PaymentGateway } from '../payments/gateway';
import type { Database } from '../store/database';
import { classifyActivityFailures } from './failures';
import { createInvoicingActivities } from './invoicing';
import { createJanitorActivities } from './janitor';
import { createPaymentActivities } from './payments';
import { createPeriodOpeningActivities } from './period-opening';
import { createPlanChangeActivities } from './plan-changes';
import { createSubscriptionActivities } from './subscriptions';
import { createRefundActivities } from './refunds';
import { createReratingActivities } from './rerating';
import { createSpendingActivities } from './spending';
import { createThresholdActivities } from './thresholds';
import { createUsageActivities } from './usage';
import { createWalletTopUpActivities } from './wallet-topups';

export interface ActivityDependencies {
  readonly db: Database;
  readonly gateway: PaymentGateway;
}

/**
 * Every activity, classified: a deterministic failure leaves it non-retryable (./failures), so nothing retries
 * forever on bad data. Each call site in workflows/ handles that failure (docs/operations.md has the table):
 * a billing step waits in `needs_attention` for ops (workflows/subscription/attention.ts); a side step that must
 * not stop billing (notification, offer record, status mirror) is noted in the timeline and billing goes on; a
 * re-rating or a janitor run fails visibly. A Record over the contract's names, so a new activity cannot be
 * registered without a decision here (and at its call site).
 */
const CLASSIFIED: Record<keyof BillingActivities, true> = {
  createPeriodInvoice: true,
  createProrationInvoice: true,
  openBillingPeriod: true,
  chargeInvoice: true,
  markInvoiceUncollectible: true,
  refundCreditNote: true,
  refundCreditTotal: true,
  recordSubscriptionStatus: true,
  recordUsageEnd: true,
  recordPlanChange: true,
  applyPlanChange: true,
  makeCustomerOffer: true,
  recordOfferAnswer: true,
  notifyCustomer: true,
  closeUsagePeriod: true,
  checkSpending: true,
  createThresholdInvoice: true,
  proposeRerate: true,
  recordRerateDecision: true,
  finalizeRerate: true,
  recordRerateFailure: true,
  refundRerateCreditNotes: true,
  scanForReconciliation: true,
  settleUnknownPayment: true,
  collectUncollectedInvoice: true,
  creditOwedReversals: true,
  recordReconciliationFindings: true,
  // wallet workflow (workflows/wallet.ts): a deterministic failure fails that step visibly; the top-up stays pending
  runWalletTimers: true,
  walletAgenda: true,
  prepareTopUpInvoice: true,
  settleTopUp: true,
};

export const CLASSIFIED_ACTIVITIES: ReadonlySet<keyof BillingActivities> = new Set(Object.keys(CLASSIFIED) as (keyof BillingActivities)[]);

/**
 * Every activity the worker registers, with its I/O dependencies injected (tests pass their own). Typed by the
 * contract the workflows proxy, so an activity and its declared request/result cannot drift apart. Failures leave
 * classified (./failures): a deterministic one is non-retryable, so it is never retried forever.
 */
export function createActivities(deps: ActivityDependencies): BillingActivities {
  const invoicing = createInvoicingActivities(deps.db);
  const payments = createPaymentActivities(deps.db, deps.gateway);
  const usage = createUsageActivities(deps.db);
  return classifyActivityFailures({
    ...invoicing,
    ...payments,
    ...createSubscriptionActivities(deps.db),
    ...createPlanChangeActivities(deps.db),
    ...usage,
    ...createReratingActivities(deps.db),
    ...createRefundActivities(deps.db, deps.gateway),
    ...createSpendingActivities(deps.db),
    ...createThresholdActivities(deps.db),
    ...createJanitorActivities(deps.db, deps.gateway),
    ...createWalletTopUpActivities(deps.db),
    // The three steps unclassified inside: the combined activity's own failure is classified on the way out.
    ...createPeriodOpeningActivities({ ...invoicing, ...payments, ...usage }),
  }, CLASSIFIED_ACTIVITIES);
}

export type { BillingActivities };
