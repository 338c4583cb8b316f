/**
 * The period's opening as one activity: close the previous period's usage, write the period invoice, charge it
 * once. Each step is the activity of the same name, idempotent on its own, so a retry of the whole redoes nothing
 * that committed. One local activity instead of three saves the workflow two activations and two markers per
 * period (docs/benchmarks.md, "What a period costs on Temporal").
 */
import type { BillingActivities } from '../contract/activities';
import type { OpenBillingPeriodRequest, OpenBillingPeriodResult } from '../contract/period-opening';

type Steps = Pick<BillingActivities, 'closeUsagePeriod' | 'createPeriodInvoice' | 'chargeInvoice'>;

export function createPeriodOpeningActivities(steps: Steps) {
  return {
    async openBillingPeriod(request: OpenBillingPeriodRequest): Promise<OpenBillingPeriodResult> {
      const usageClosed = request.closeUsage ? await steps.closeUsagePeriod(request.closeUsage) : null;
      const invoice = await steps.createPeriodInvoice(request.invoice);
      // As the workflow's collect() decides: a credit total is never charged.
      const payment = invoice.total.startsWith('-') ? null : await steps.chargeInvoice({ invoiceId: invoice.invoiceId, attempt: 1 });
      return { usageClosed, invoice, payment };
    },
  };
}
