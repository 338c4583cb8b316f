/**
 * A tiny workflow for payments tests: calls chargeInvoice with the retry policy the subscription workflow uses,
 * so a real Temporal server retries the activity exactly as it would in production.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { BillingActivities } from '../../contract/activities';
import type { ChargeInvoiceRequest, ChargeInvoiceResult } from '../../contract/payments';

const { chargeInvoice } = proxyActivities<BillingActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export async function chargeInvoiceWorkflow(request: ChargeInvoiceRequest): Promise<ChargeInvoiceResult> {
  return chargeInvoice(request);
}
