/**
 * The queries of a bulk subscription import (api/subscription-import.ts): a few statements per batch of rows,
 * never one round trip per row, so that the import's rate is set by workflow starts, not by Postgres.
 */
import type { Knex } from 'knex';
import type { PlanRow } from './catalog';
import type { CustomerRow } from './customers';

export type ImportCustomer = Pick<CustomerRow, 'id' | 'external_id' | 'currency' | 'name'>;

/** The customers named by our ids or by their external ids, in one query. */
export async function findImportCustomers(
  db: Knex | Knex.Transaction,
  ids: readonly string[],
  externalIds: readonly string[],
): Promise<ImportCustomer[]> {
  if (ids.length === 0 && externalIds.length === 0) return [];
  return db<CustomerRow>('customers')
    .where((query) => {
      if (ids.length > 0) query.whereIn('id', [...new Set(ids)]);
      if (externalIds.length > 0) query.orWhereIn('external_id', [...new Set(externalIds)]);
    })
    .select('id', 'external_id', 'currency', 'name');
}

/** Every version of the plans named by these codes (a batch usually names one or two). */
export async function findPlanVersionsByCode(db: Knex | Knex.Transaction, codes: readonly string[]): Promise<PlanRow[]> {
  if (codes.length === 0) return [];
  return db<PlanRow>('plans').whereIn('code', [...new Set(codes)]).orderBy('version', 'desc');
}

/** A subscription imported before: its id, and what a rerun reports its start left unbilled by (customer, plan, start). */
export interface FoundImport {
  readonly id: string;
  readonly customerId: string;
  readonly planId: string;
  readonly startAt: Date;
}

/** The subscriptions already imported, by external id, for these external ids. */
export async function findImportedSubscriptions(db: Knex | Knex.Transaction, externalIds: readonly string[]): Promise<Map<string, FoundImport>> {
  if (externalIds.length === 0) return new Map();
  const rows: { id: string; external_id: string; customer_id: string; plan_id: string; start_at: Date }[] = await db('subscriptions')
    .whereIn('external_id', [...new Set(externalIds)])
    .select('id', 'external_id', 'customer_id', 'plan_id', 'start_at');
  return new Map(rows.map((row) => [row.external_id, { id: row.id, customerId: row.customer_id, planId: row.plan_id, startAt: row.start_at }]));
}

export interface ImportedSubscription {
  readonly id: string;
  readonly externalId: string;
  readonly customerId: string;
  readonly planId: string;
  readonly workflowId: string;
  readonly currentPeriodStart: Date;
  readonly currentPeriodEnd: Date;
}

/**
 * Inserts imported subscriptions, already active in their current period, in one statement. An external id
 * imported meanwhile (a concurrent run) is skipped; the ids actually inserted come back.
 *
 * Two imports of the same rows at once (a client retrying on a timeout, two API replicas) insert the same rows in
 * one statement each. Both were answered 500 at times: their rows came in the order their workflow starts completed,
 * which differs between the two, so each statement waited on a row the other had inserted first (deadlock detected);
 * and a conflict on the primary key (the id derives from the external id) is no conflict `ON CONFLICT
 * (external_id)` skips (a unique violation when the other statement is between its two index entries). So the rows
 * go in one order (by id) and every unique conflict skips the row: an external id is one subscription, whoever
 * writes it, and the loser's rows are reported `existing`, never lost to a rolled-back statement.
 */
export async function insertImportedSubscriptions(db: Knex | Knex.Transaction, rows: readonly ImportedSubscription[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const ordered = [...rows].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const inserted: { id: string }[] = await db('subscriptions')
    .insert(
      ordered.map((row) => ({
        id: row.id,
        external_id: row.externalId,
        customer_id: row.customerId,
        plan_id: row.planId,
        status: 'active',
        workflow_id: row.workflowId,
        // Usage before the current period belongs to the system it came from; ingestion refuses it (start_at).
        start_at: row.currentPeriodStart,
        current_period_start: row.currentPeriodStart,
        current_period_end: row.currentPeriodEnd,
      })),
    )
    .onConflict()
    .ignore()
    .returning('id');
  return new Set(inserted.map((row) => row.id));
}
