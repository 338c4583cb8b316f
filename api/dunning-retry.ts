import type { Client } from '@temporalio/client';
import type { Database } from '../store/database';
import { paymentMethodUpdatedSignal } from '../workflows/definitions';
import type { PaymentMethodChange } from './routes/payment-methods';

/**
 * A new payment method ends the wait between dunning attempts: every past-due or suspended subscription of the
 * customer is told to retry its open invoice at once.
 */
export function retryDunningOnNewPaymentMethod(db: Database, temporal: Client) {
  return async (change: PaymentMethodChange): Promise<void> => {
    const subscriptions: { workflow_id: string }[] = await db('subscriptions')
      .where({ customer_id: change.customerId })
      .whereIn('status', ['past_due', 'suspended'])
      .select('workflow_id');
    await Promise.all(subscriptions.map(({ workflow_id }) => temporal.workflow.getHandle(workflow_id).signal(paymentMethodUpdatedSignal)));
  };
}
