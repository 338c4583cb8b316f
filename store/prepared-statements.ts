/**
 * Named prepared statements for the hottest statements (the entitlement check, the usage preview's totals, the
 * writes that finalize every invoice): Postgres parses and plans such a statement once per pooled connection
 * instead of on every call, which is most of the cost of a statement that touches a handful of index rows. Text uses $1.. placeholders; same row types as
 * knex (it is the pool's own pg connection).
 */
import type { Knex } from 'knex';

interface PgConnection {
  query(config: { name: string; text: string; values: readonly unknown[] }): Promise<{ rows: unknown[] }>;
}

interface PooledClient {
  acquireConnection(): Promise<PgConnection>;
  releaseConnection(connection: PgConnection): Promise<void>;
}

/**
 * Runs `text` as the prepared statement `name` (one text per name, for the life of the process). In a
 * transaction it runs on the transaction's own connection (knex's transaction client hands out only that one), so
 * it commits or rolls back with the rest; await each call before the next, as for any query in a transaction.
 *
 * A prepared statement's result columns are fixed when it is first parsed: a statement that returns `*` of a table
 * fails on every later run once a migration adds a column to it ("cached plan must not change result type"), on
 * every pooled connection of every process started before the migration. So texts name their columns.
 */
export async function queryPrepared<Row>(db: Knex | Knex.Transaction, name: string, text: string, values: readonly unknown[]): Promise<Row[]> {
  const client = db.client as unknown as PooledClient;
  const connection = await client.acquireConnection();
  try {
    return (await connection.query({ name, text, values })).rows as Row[];
  } finally {
    await client.releaseConnection(connection);
  }
}
