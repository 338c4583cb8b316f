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
