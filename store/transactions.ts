/**
 * One unit of work: everything written inside `work` commits together or not at all. Activities and routes
 * open transactions through this, so only store/ knows they are knex transactions.
 */
import type { Knex } from 'knex';

export type Transaction = Knex.Transaction;

/** Runs `work` in a transaction (a savepoint when `db` is itself a transaction). */
export function inTransaction<T>(db: Knex | Knex.Transaction, work: (trx: Transaction) => Promise<T>): Promise<T> {
  return db.transaction(work);
}

/**
 * Runs `work` for each item: side by side on a pool (each query gets its own connection), one after the other in
 * a transaction, whose single connection must never be handed a query while another is in flight (pg queues it
 * today with a DeprecationWarning and refuses it from pg 9 on).
 */
export async function mapOnConnection<T, R>(db: Knex | Knex.Transaction, items: readonly T[], work: (item: T) => Promise<R>): Promise<R[]> {
  if (!('isTransaction' in db && db.isTransaction)) return Promise.all(items.map(work));
  const results: R[] = [];
  for (const item of items) results.push(await work(item));
  return results;
}
