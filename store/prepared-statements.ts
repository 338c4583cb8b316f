/**
 * Named prepared statements for the hottest reads (the entitlement check, the usage preview's totals): Postgres
 * parses and plans such a statement once per pooled connection instead of on every request, which is most of the
 * cost of a multi-join read that touches a handful of index rows. Text uses $1.. placeholders; same row types as
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

/** Runs `text` as the prepared statement `name` (one text per name, for the life of the process). */
export async function queryPrepared<Row>(db: Knex, name: string, text: string, values: readonly unknown[]): Promise<Row[]> {
  const client = db.client as unknown as PooledClient;
  const connection = await client.acquireConnection();
  try {
    return (await connection.query({ name, text, values })).rows as Row[];
  } finally {
    await client.releaseConnection(connection);
  }
}
