/**
 * A throwaway Postgres database, as tests, the simulation and the benchmarks use: a fresh database (random name)
 * on a server, migrated from empty, dropped afterwards; and, when no server is given, a server of its own
 * (DATABASE_URL's, or an embedded one in a temp folder that stop() removes).
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createDatabase, Database, ensureDatabaseExists, migrateToLatest } from './database';
import { startEmbeddedPostgres } from './embedded-postgres';

export interface ThrowawayDatabase {
  readonly db: Database;
  /** Connection string of the new database (for a worker in another process). */
  readonly url: string;
  readonly name: string;
  /** Closes `db` and drops the database. */
  drop(): Promise<void>;
}

export interface ThrowawayDatabaseOptions {
  /** Start of the database name, e.g. 'test' gives test_<random>. */
  readonly namePrefix: string;
  /** Pool size of `db`; the createDatabase default when omitted. */
  readonly poolMax?: number;
  /**
   * A migrated database on the same server to copy instead of migrating from empty (tests: one template per run,
   * copied by each test file, because running every migration costs about a second per file). Nobody may be
   * connected to it while it is copied.
   */
  readonly template?: string;
}

/** A new database on the server at `serverUrl`, migrated forward from empty (or copied from a migrated template). */
export async function createThrowawayDatabase(serverUrl: string, options: ThrowawayDatabaseOptions): Promise<ThrowawayDatabase> {
  const name = `${options.namePrefix}_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const url = options.template ? await createDatabaseFromTemplate(serverUrl, name, options.template) : await ensureDatabaseExists(serverUrl, name);
  const db = createDatabase(url, options.poolMax);
  const drop = async (): Promise<void> => {
    await db.destroy();
    await dropDatabase(serverUrl, name);
  };
  try {
    if (!options.template) await migrateToLatest(db);
  } catch (error) {
    await drop().catch(() => undefined);
    throw error;
  }
  return { db, url, name, drop };
}

async function createDatabaseFromTemplate(serverUrl: string, name: string, template: string): Promise<string> {
  if (!SAFE_NAME.test(template)) throw new Error(`unsafe template database name: ${template}`);
  await withAdmin(serverUrl, (admin) => admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** WITH (FORCE): a worker that did not close its pool must not keep the database alive. */
export async function dropDatabase(serverUrl: string, name: string): Promise<void> {
  if (!SAFE_NAME.test(name)) throw new Error(`unsafe database name: ${name}`);
  await withAdmin(serverUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

/** Database names are spliced into DDL (it takes no parameters): only plain identifiers pass. */
const SAFE_NAME = /^[a-z_][a-z0-9_]*$/;

async function withAdmin<T>(serverUrl: string, work: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
}

export interface PostgresServer {
  readonly url: string;
  /** Where it runs, for the record. */
  readonly description: string;
  stop(): Promise<void>;
}

export interface ThrowawayServerOptions {
  /** Prefix of the temp folder an embedded server lives in, e.g. 'meterloop-bench-'. */
  readonly tempPrefix: string;
  /** Keep Postgres's durable defaults (benchmarks measure commits); otherwise trade durability for speed. */
  readonly durable: boolean;
  /** A server to use instead of an embedded one; default DATABASE_URL. */
  readonly serverUrl?: string;
}

/** DATABASE_URL's server (stop() leaves it alone), or an embedded one in a temp folder that stop() removes. */
export async function startThrowawayServer(options: ThrowawayServerOptions): Promise<PostgresServer> {
  const serverUrl = options.serverUrl ?? process.env.DATABASE_URL;
  if (serverUrl) return { url: serverUrl, description: "DATABASE_URL's server", stop: async () => undefined };
  const root = await mkdtemp(path.join(os.tmpdir(), options.tempPrefix));
  try {
    const postgres = await startEmbeddedPostgres({ dataDir: path.join(root, 'pg'), persistent: false, unsafeFastMode: !options.durable });
    return {
      url: postgres.connectionString,
      description: `embedded in ${root}${options.durable ? ' (durable: fsync on, synchronous_commit on)' : ''}`,
      stop: async () => {
        await postgres.stop();
        await rm(root, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }
}

export interface StartedThrowawayDatabase extends Omit<ThrowawayDatabase, 'drop'> {
  readonly description: string;
  /** Drops the database and stops the server if it is our own. */
  stop(): Promise<void>;
}

/** A server as startThrowawayServer gives one, with a fresh migrated database on it: all of it gone after stop(). */
export async function startThrowawayDatabase(options: ThrowawayServerOptions & ThrowawayDatabaseOptions): Promise<StartedThrowawayDatabase> {
  const server = await startThrowawayServer(options);
  try {
    const database = await createThrowawayDatabase(server.url, options);
    return {
      db: database.db,
      url: database.url,
      name: database.name,
      description: `${server.description}, database ${database.name}`,
      stop: async () => {
        try {
          await database.drop();
        } finally {
          await server.stop();
        }
      },
    };
  } catch (error) {
    await server.stop();
    throw error;
  }
}
