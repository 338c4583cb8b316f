/**
 * The janitor's queries: the candidates a reconciliation run looks at, and its findings (reconciliation_findings,
 * at most one open row per (kind, subject)).
 */
import type { Knex } from 'knex';
import { nextAttemptAnnouncedSql } from './payments';

type Db = Knex | Knex.Transaction;

/** Subscriptions whose workflow retries an unpaid invoice on its own (dunning; after the end, see nextAttemptAnnouncedSql). */
const DUNNING_STATUSES = ['past_due', 'suspended'];
/** Subscriptions whose workflow is waiting for its period to end (and so must invoice the next one). */
const IN_PERIOD_STATUSES = ['active', 'pending_cancellation'];
const placeholders = (values: readonly unknown[]): string => values.map(() => '?').join(', ');

export interface StalePendingPaymentRow {
  id: string;
  invoice_id: string;
  attempt: number;
  created_at: Date;
}

/** Payments still pending that were written before `before`: their gateway answer never reached us. */
export async function listStalePendingPayments(db: Db, before: Date, limit: number): Promise<StalePendingPaymentRow[]> {
  return db('payments').where({ status: 'pending' }).where('created_at', '<', before).orderBy('created_at').limit(limit).select('id', 'invoice_id', 'attempt', 'created_at');
}

export interface IdleOpenInvoiceRow {
  id: string;
  number: string | null;
  subscription_id: string | null;
  total: string;
  currency: string;
  finalized_at: Date;
  /** Attempts made so far (all decided: none is pending). */
  attempts: number;
  last_attempt: number | null;
  last_failure_code: string | null;
}

/**
 * Open invoices (not credit notes, not negative) finalized before `before` with no payment attempt pending and no
 * dunning in flight for them: no attempt at all, or only declined attempts while the subscription is not past due
 * or suspended. Nobody is collecting these.
 */
export async function listIdleOpenInvoices(db: Db, before: Date, limit: number): Promise<IdleOpenInvoiceRow[]> {
  const result = await db.raw<{ rows: IdleOpenInvoiceRow[] }>(
    `SELECT i.id, i.number, i.subscription_id, i.total, i.currency, coalesce(i.finalized_at, i.created_at) AS finalized_at,
            count(p.id)::int AS attempts, max(p.attempt) AS last_attempt,
            (array_agg(p.failure_code ORDER BY p.attempt DESC))[1] AS last_failure_code
       FROM invoices i
       LEFT JOIN payments p ON p.invoice_id = i.id
       LEFT JOIN subscriptions s ON s.id = i.subscription_id
      WHERE i.status = 'open' AND i.kind <> 'credit_note' AND i.total >= 0
        AND coalesce(i.finalized_at, i.created_at) < ?
        AND NOT EXISTS (SELECT 1 FROM payments pending WHERE pending.invoice_id = i.id AND pending.status = 'pending')
      GROUP BY i.id, s.status
     HAVING count(p.id) = 0 OR ((s.status IS NULL OR s.status NOT IN (${placeholders(DUNNING_STATUSES)})) AND NOT ${nextAttemptAnnouncedSql('i')})
      ORDER BY coalesce(i.finalized_at, i.created_at)
      LIMIT ?`,
    [before, ...DUNNING_STATUSES, before, limit],
  );
  return result.rows;
}

/** Whether any payment attempt of the invoice exists (a collection started). */
export async function hasPaymentAttempts(db: Db, invoiceId: string): Promise<boolean> {
  return (await db('payments').where({ invoice_id: invoiceId }).first('id')) !== undefined;
}

export interface OverdueSubscriptionRow {
  id: string;
  status: string;
  current_period_start: Date | null;
  current_period_end: Date;
  /** The plan's settings (usage grace window). */
  settings: Record<string, unknown> | null;
  /** Whether the usage of the ended period was closed (then only its invoice is missing). */
  usage_closed: boolean;
}

/**
 * Subscriptions inside a billing period whose current period ended before `endedBefore`: the next period's invoice
 * (which moves current_period_end) was not written. The caller adds each plan's grace window.
 */
export async function listSubscriptionsPastPeriodEnd(db: Db, endedBefore: Date, limit: number): Promise<OverdueSubscriptionRow[]> {
  const result = await db.raw<{ rows: OverdueSubscriptionRow[] }>(
    `SELECT s.id, s.status, s.current_period_start, s.current_period_end, p.settings,
            EXISTS (SELECT 1 FROM usage_period_closures c WHERE c.subscription_id = s.id AND c.period_end >= s.current_period_end) AS usage_closed
       FROM subscriptions s
       JOIN plans p ON p.id = s.plan_id
      WHERE s.status IN (${placeholders(IN_PERIOD_STATUSES)}) AND s.current_period_end < ?
      ORDER BY s.current_period_end
      LIMIT ?`,
    [...IN_PERIOD_STATUSES, endedBefore, limit],
  );
  return result.rows;
}

export interface AttentionSubscriptionRow {
  id: string;
  updated_at: Date;
  /** Why, as the workflow recorded it (the latest audit entry of the status change). */
  reason: string | null;
}

export async function listSubscriptionsWithStatus(db: Db, status: string, limit: number): Promise<AttentionSubscriptionRow[]> {
  const result = await db.raw<{ rows: AttentionSubscriptionRow[] }>(
    `SELECT s.id, s.updated_at,
            (SELECT a.reason FROM audit_log a
              WHERE a.subject_type = 'subscription' AND a.subject_id = s.id::text AND a.action = 'subscription.' || s.status
              ORDER BY a.id DESC LIMIT 1) AS reason
       FROM subscriptions s
      WHERE s.status = ?
      ORDER BY s.updated_at
      LIMIT ?`,
    [status, limit],
  );
  return result.rows;
}

// ---------------------------------------------------------------------------------------------------------------
// Findings

export interface FindingRow {
  id: string;
  kind: string;
  subject_type: string;
  subject_id: string;
  detail: string;
  repaired: boolean;
  first_seen: Date;
  last_seen: Date;
  resolved_at: Date | null;
}

export interface ObservedFinding {
  readonly kind: string;
  readonly subjectType: string;
  readonly subjectId: string;
  readonly detail: string;
  readonly repaired: boolean;
}

export interface FindingsRecorded {
  readonly opened: number;
  readonly stillOpen: number;
  readonly repaired: number;
  readonly resolved: number;
}

/**
 * Records one run's findings at `at`, in one transaction: an open finding seen again is updated (last_seen, detail),
 * a new one inserted; a repaired one is closed at once. Then every open finding of a `completeKinds` kind that this
 * run did not see is resolved: its condition is gone.
 */
export async function recordFindings(db: Knex, at: Date, findings: readonly ObservedFinding[], completeKinds: readonly string[]): Promise<FindingsRecorded> {
  return db.transaction(async (trx) => {
    const open: FindingRow[] = await trx('reconciliation_findings').whereNull('resolved_at').forUpdate();
    const openByKey = new Map(open.map((row) => [`${row.kind}:${row.subject_id}`, row]));
    const seen = new Set<string>();
    let opened = 0;
    let stillOpen = 0;
    let repaired = 0;
    for (const finding of findings) {
      const key = `${finding.kind}:${finding.subjectId}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const existing = openByKey.get(key);
      const resolvedAt = finding.repaired ? at : null;
      if (finding.repaired) repaired += 1;
      if (existing) {
        await trx('reconciliation_findings')
          .where({ id: existing.id })
          .update({ detail: finding.detail, repaired: finding.repaired, last_seen: at, resolved_at: resolvedAt });
        if (!finding.repaired) stillOpen += 1;
      } else {
        await trx('reconciliation_findings').insert({
          kind: finding.kind,
          subject_type: finding.subjectType,
          subject_id: finding.subjectId,
          detail: finding.detail,
          repaired: finding.repaired,
          first_seen: at,
          last_seen: at,
          resolved_at: resolvedAt,
        });
        if (!finding.repaired) opened += 1;
      }
    }
    const gone = open.filter((row) => completeKinds.includes(row.kind) && !seen.has(`${row.kind}:${row.subject_id}`)).map((row) => row.id);
    if (gone.length > 0) await trx('reconciliation_findings').whereIn('id', gone).update({ resolved_at: at });
    return { opened, stillOpen, repaired, resolved: gone.length };
  });
}

export interface FindingsFilter {
  /** `open`: not resolved; `resolved`: resolved (repaired or gone); `all`. */
  readonly status: 'open' | 'resolved' | 'all';
  readonly kind?: string;
  readonly limit: number;
}

/** Findings, most recently seen first. */
export async function listFindings(db: Db, filter: FindingsFilter): Promise<FindingRow[]> {
  const query = db<FindingRow>('reconciliation_findings').orderBy([{ column: 'last_seen', order: 'desc' }, { column: 'id' }]).limit(filter.limit);
  if (filter.status === 'open') query.whereNull('resolved_at');
  if (filter.status === 'resolved') query.whereNotNull('resolved_at');
  if (filter.kind) query.where({ kind: filter.kind });
  return query;
}

/** For the /metrics gauge: findings by kind, open or resolved, and whether the janitor repaired them. */
export async function countFindingsByState(db: Db): Promise<{ labels: Record<string, string>; count: number }[]> {
  const result = await db.raw<{ rows: { kind: string; status: string; repaired: string; count: string }[] }>(
    `SELECT kind, CASE WHEN resolved_at IS NULL THEN 'open' ELSE 'resolved' END AS status,
            CASE WHEN repaired THEN 'true' ELSE 'false' END AS repaired, count(*) AS count
       FROM reconciliation_findings
      GROUP BY 1, 2, 3`,
  );
  return result.rows.map((row) => ({ labels: { kind: row.kind, status: row.status, repaired: row.repaired }, count: Number(row.count) }));
}
