import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import type { Database } from '../store/database';
import { dunningWorkflowIdsOfCustomer } from '../store/payments';
import { unpaidSubscriptionWorkflowIds } from '../store/subscriptions';
import { paymentMethodUpdatedSignal } from '../workflows/definitions';
import type { PaymentMethodChange } from './routes/payment-methods';
import { withTemporalDeadline } from './temporal-deadline';

/**
 * A new payment method ends the wait between dunning attempts: every past-due or suspended subscription of the
 * customer, every one whose dunning announced a next attempt or has one at the gateway with another card (whatever
 * its status: an ended one still collecting shows canceled), is told to retry its open invoice at once.
 */
export function retryDunningOnNewPaymentMethod(db: Database, temporal: Client) {
  return async (change: PaymentMethodChange): Promise<void> => {
    // By status (past_due, suspended, ...) and by dunning announced: a subscription asked to cancel at the period's
    // end while past due shows pending_cancellation, and was never told (its card not tried until the next attempt).
    const [byStatus, dunning] = await Promise.all([unpaidSubscriptionWorkflowIds(db, change.customerId), dunningWorkflowIdsOfCustomer(db, change.customerId, change.paymentMethod)]);
    const workflowIds = [...new Set([...byStatus, ...dunning])];
    // Bounded like every Temporal call of the API: unreachable, the request answers a quick 503 (its retry with the
    // same Idempotency-Key signals again) instead of hanging through the client's own retries.
    await withTemporalDeadline(temporal, () =>
      Promise.all(
        workflowIds.map((workflowId) =>
          temporal.workflow
            .getHandle(workflowId)
            .signal(paymentMethodUpdatedSignal)
            .catch((error: unknown) => {
              // An ended subscription's workflow finished its collection meanwhile: nothing is left to retry.
              if (!(error instanceof WorkflowNotFoundError)) throw error;
            }),
        ),
      ),
    );
  };
}
