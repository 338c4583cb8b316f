import knex, { Knex } from 'knex';
import pg from 'pg';
import { migrationSource } from '../migrations';

// NUMERIC (1700) and BIGINT (20) stay strings: money and counters never pass through a JS number.
pg.types.setTypeParser(1700, (value) => value);
pg.types.setTypeParser(20, (value) => value);

export type Database = Knex;

export function createDatabase(connectionString: string, poolMax = 10): Database {
  return knex({
    client: 'pg',
    connection: connectionString,
    pool: { min: 0, max: poolMax },
  });
}

/** Runs every migration forward from wherever the database is (from empty on a new one). */
export async function migrateToLatest(db: Database): Promise<string[]> {
  const [, applied] = (await db.migrate.latest({ migrationSource })) as [number, string[]];
  return applied;
}

/** Creates a database on the same server (tests use one per file); a no-op if it exists. */
export async function ensureDatabaseExists(serverConnectionString: string, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`unsafe database name: ${name}`);
  const admin = new pg.Client({ connectionString: serverConnectionString });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverConnectionString);
  url.pathname = `/${name}`;
  return url.toString();
}
