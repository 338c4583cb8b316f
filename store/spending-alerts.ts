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

/** A threshold recorded now: first in its period, or again because the limit it is a share of changed since. */
export interface RaisedSpendingAlert {
  readonly again: boolean;
  readonly raisedAt: Date;
}

/**
 * Records a crossed threshold once per period and limit. Returns null when it was raised earlier against the same
 * limit (nothing written). A threshold raised against another limit (the customer changed the budget since) is
 * raised again: the unique (subscription, period, basis, threshold) row takes the new limit, so a budget raised
 * mid-period had its thresholds stay silent, each one "already raised" against the old amount.
 */
export async function recordSpendingAlert(trx: Knex.Transaction, alert: NewSpendingAlert): Promise<RaisedSpendingAlert | null> {
  // The unique row is keyed by the threshold's text: a row raised before thresholds were canonical ("50.0") is the
  // same threshold as "50", so the alert takes that row's spelling rather than raising a second one.
  const spelled = await trx('spending_alerts')
    .where({ subscription_id: alert.subscriptionId, period_start: alert.periodStart, basis: alert.basis })
    .whereRaw('threshold::numeric = ?::numeric', [alert.threshold])
    .first<{ threshold: string } | undefined>('threshold');
  const threshold = spelled?.threshold ?? alert.threshold;
  const result = await trx.raw<{ rows: Array<{ again: boolean; raised_at: Date }> }>(
    `INSERT INTO spending_alerts (subscription_id, period_start, basis, threshold, spend, limit_amount)
     VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (subscription_id, period_start, basis, threshold) DO UPDATE
       SET spend = excluded.spend, limit_amount = excluded.limit_amount, raised_at = now()
       WHERE spending_alerts.limit_amount <> excluded.limit_amount
     RETURNING (xmax <> 0) AS again, raised_at`,
    [alert.subscriptionId, alert.periodStart, alert.basis, threshold, alert.spend, alert.limitAmount],
  );
  const row = result.rows[0];
  return row ? { again: row.again, raisedAt: row.raised_at } : null;
}

/**
 * The usage already invoiced for the stretches of a billing period that closed before `until` (an immediate plan
 * change closes its stretch on the proration invoice): the usage lines of those invoices, as billed (decimal string).
 * Threshold invoices are left out: the invoice that closes a stretch rates all of its usage again.
 */
export async function usageInvoicedWithinPeriod(db: Knex | Knex.Transaction, subscriptionId: string, periodStart: Date, until: Date): Promise<string> {
  const row = await db('invoice_lines as l')
    .join('invoices as i', 'i.id', 'l.invoice_id')
    .where({ 'i.subscription_id': subscriptionId, 'i.kind': 'proration', 'l.kind': 'usage' })
    .andWhere('l.period_start', '>=', periodStart)
    .andWhere('l.period_end', '<=', until)
    .sum<{ total: string | null }>('l.amount as total')
    .first();
  return row?.total ?? '0';
}
