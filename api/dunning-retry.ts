import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import type { Database } from '../store/database';
import { unpaidSubscriptionWorkflowIds } from '../store/subscriptions';
import { paymentMethodUpdatedSignal } from '../workflows/definitions';
import type { PaymentMethodChange } from './routes/payment-methods';
import { withTemporalDeadline } from './temporal-deadline';

/**
 * A new payment method ends the wait between dunning attempts: every past-due or suspended subscription of the
 * customer, and every ended one still collecting an invoice, is told to retry its open invoice at once.
 */
export function retryDunningOnNewPaymentMethod(db: Database, temporal: Client) {
  return async (change: PaymentMethodChange): Promise<void> => {
    const workflowIds = await unpaidSubscriptionWorkflowIds(db, change.customerId);
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
