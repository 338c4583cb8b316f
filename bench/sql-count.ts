/**
 * Counts the SQL statements and transactions a knex instance sends (its 'query' event fires for every statement,
 * BEGIN and COMMIT included), so a benchmark can say how much SQL one unit of work costs on each path.
 */
import type { Knex } from 'knex';

export interface SqlCounts {
  /** Every statement sent, BEGIN/COMMIT/ROLLBACK and savepoints included. */
  readonly statements: number;
  /** Transactions begun (each a durable commit when it writes). */
  readonly transactions: number;
}

export function countSql(db: Knex): () => SqlCounts {
  let statements = 0;
  let transactions = 0;
  db.on('query', (query: { sql?: string }) => {
    statements += 1;
    if (/^\s*begin\b/i.test(query.sql ?? '')) transactions += 1;
  });
  return () => ({ statements, transactions });
}

/** "21.0 statements (4.0 transactions) per period" between two readings. */
export function describeSqlPer(before: SqlCounts, after: SqlCounts, units: number, unit: string): string {
  const per = (value: number): string => (value / units).toFixed(1);
  return `${per(after.statements - before.statements)} SQL statements (${per(after.transactions - before.transactions)} transactions) per ${unit}`;
}
