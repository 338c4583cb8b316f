/** Spending alerts raised per subscription and period: the unique (subscription, period, basis, threshold) row. */
import type { Knex } from 'knex';

export interface NewSpendingAlert {
  readonly subscriptionId: string;
  readonly periodStart: Date;
  readonly basis: string;
  readonly threshold: string;
  /** What was spent when the threshold was crossed, and the limit it is a share of (decimal strings). */
  readonly spend: string;
  readonly limitAmount: string;
}

/** Records a crossed threshold once per period. Returns false when it was raised earlier (nothing written). */
export async function recordSpendingAlert(trx: Knex.Transaction, alert: NewSpendingAlert): Promise<boolean> {
  const inserted = await trx('spending_alerts')
    .insert({
      subscription_id: alert.subscriptionId,
      period_start: alert.periodStart,
      basis: alert.basis,
      threshold: alert.threshold,
      spend: alert.spend,
      limit_amount: alert.limitAmount,
    })
    .onConflict(['subscription_id', 'period_start', 'basis', 'threshold'])
    .ignore()
    .returning('id');
  return inserted.length > 0;
}
