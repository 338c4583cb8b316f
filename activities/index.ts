import type { BillingActivities } from '../contract/activities';
import type { PaymentGateway } from '../payments/gateway';
import type { Database } from '../store/database';
import { classifyActivityFailures } from './failures';
import { createInvoicingActivities } from './invoicing';
import { createJanitorActivities } from './janitor';
import { createPaymentActivities } from './payments';
import { createPlanChangeActivities } from './plan-changes';
import { createSubscriptionActivities } from './subscriptions';
import { createRefundActivities } from './refunds';
import { createReratingActivities } from './rerating';
import { createSpendingActivities } from './spending';
import { createUsageActivities } from './usage';

export interface ActivityDependencies {
  readonly db: Database;
  readonly gateway: PaymentGateway;
}

/**
 * The activities whose deterministic failures are made non-retryable: the subscription workflow runs each of them
 * as a step that waits in `needs_attention` for ops (workflows/subscription/attention.ts), and a janitor run that
 * fails is visible and followed by the next scheduled run. Every other activity keeps retrying with backoff until
 * its caller can handle such a failure: failing a workflow that nobody can resume would be worse than a visible
 * retry.
 */
export const CLASSIFIED_ACTIVITIES: ReadonlySet<keyof BillingActivities> = new Set<keyof BillingActivities>([
  'closeUsagePeriod',
  'createPeriodInvoice',
  'checkSpending',
  'scanForReconciliation',
  'settleUnknownPayment',
  'collectUncollectedInvoice',
  'recordReconciliationFindings',
]);

/**
 * Every activity the worker registers, with its I/O dependencies injected (tests pass their own). Typed by the
 * contract the workflows proxy, so an activity and its declared request/result cannot drift apart. Failures leave
 * classified (./failures): a deterministic one is non-retryable, so it is never retried forever.
 */
export function createActivities(deps: ActivityDependencies): BillingActivities {
  return classifyActivityFailures({
    ...createInvoicingActivities(deps.db),
    ...createPaymentActivities(deps.db, deps.gateway),
    ...createSubscriptionActivities(deps.db),
    ...createPlanChangeActivities(deps.db),
    ...createUsageActivities(deps.db),
    ...createReratingActivities(deps.db),
    ...createRefundActivities(deps.db, deps.gateway),
    ...createSpendingActivities(deps.db),
    ...createJanitorActivities(deps.db, deps.gateway),
  }, CLASSIFIED_ACTIVITIES);
}

export type { BillingActivities };
