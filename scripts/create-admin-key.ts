/**
 * `npm run create-admin-key [-- --name "ops laptop" --role admin --expires-in-days 90]`: prints a new API key.
 *
 * The key goes to stdout on its own line (`KEY=$(npm run -s create-admin-key)`), everything else to stderr. It is
 * shown this once; only its SHA-256 is stored. Uses DATABASE_URL, or the embedded Postgres in .data/postgres that
 * `npm start` uses: the running one when `npm start` is up (found through its postmaster.pid), else started for the
 * moment and stopped again.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createAuditedApiKey, ROLES, Role } from '../store/api-keys';
import { createDatabase, migrateToLatest } from '../store/database';
import { RunningPostgres, startEmbeddedPostgres } from '../store/embedded-postgres';

const DATA_DIR = path.resolve(process.env.METERLOOP_DATA_DIR ?? path.join(__dirname, '..', '.data'));
const say = (message: string): void => {
  process.stderr.write(`[create-admin-key] ${message}\n`);
};

function argument(name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

/** The port of an embedded cluster that is running now (postmaster.pid line 4), if any. */
function runningEmbeddedPort(dataDir: string): number | undefined {
  try {
    const lines = readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
    process.kill(Number(lines[0]), 0); // throws when no such process
    return Number(lines[3]) || undefined;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const role = (argument('role') ?? 'admin') as Role;
  if (!ROLES.includes(role)) throw new Error(`--role must be one of ${ROLES.join(', ')}`);
  const days = argument('expires-in-days');
  const expiresAt = days ? new Date(Date.now() + Number(days) * 86_400_000) : null;
  if (expiresAt && !(Number(days) > 0)) throw new Error('--expires-in-days must be a positive number');
  const name = argument('name') ?? `${role} key from create-admin-key`;

  let postgres: RunningPostgres | undefined;
  let databaseUrl = process.env.DATABASE_URL;
  if (databaseUrl) {
    say('Postgres: DATABASE_URL');
  } else {
    const dataDir = path.join(DATA_DIR, 'postgres');
    const port = runningEmbeddedPort(dataDir);
    if (port) {
      databaseUrl = `postgres://meterloop:meterloop@127.0.0.1:${port}/postgres`;
      say(`Postgres: the embedded one npm start is running (port ${port})`);
    } else {
      postgres = await startEmbeddedPostgres({ dataDir, persistent: true });
      databaseUrl = postgres.connectionString;
      say(`Postgres: embedded, data in ${dataDir} (started for this command)`);
    }
  }
  const db = createDatabase(databaseUrl, 2);
  try {
    await migrateToLatest(db);
    const { key, row } = await createAuditedApiKey(db, { name, role, expiresAt }, { actor: 'cli:create-admin-key', details: { name, role } });
    say(`created ${role} key ${row.id} (ml_${row.prefix}_...)${expiresAt ? `, expires ${expiresAt.toISOString()}` : ''}; it is shown only now:`);
    process.stdout.write(`${key}\n`);
  } finally {
    await db.destroy();
    await postgres?.stop();
  }
}

main().catch((error: unknown) => {
  say(`failed: ${String((error as Error)?.message ?? error)}`);
  process.exit(1);
});
