/**
 * The cache the provisioned servers live in, outside the checkout so a fresh clone (as CI uses) finds them:
 * where it is, one lock per entry so parallel processes build it once, and a build in a temp dir renamed into
 * place so nobody ever sees a half-built entry.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Log, TemporalServerUnavailableError } from './errors';

/** `${METERLOOP_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/meterloop}/temporal`: outside the checkout, so a fresh clone reuses it. */
export function temporalCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const root = env.METERLOOP_CACHE_DIR || path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'meterloop');
  return path.resolve(root, 'temporal');
}

export async function writeManifest(dir: string, data: Record<string, unknown>): Promise<void> {
  await fs.writeFile(path.join(dir, 'manifest.json'), `${JSON.stringify({ ...data, createdAt: new Date().toISOString() }, null, 2)}\n`);
}

/**
 * Builds a cache entry in a fresh temp dir inside the cache (same filesystem), then renames it into place, so
 * readers only ever see a complete entry. If another process won the race, its entry is kept and ours dropped.
 */
export async function buildInTempDir(cacheDir: string, finalDir: string, log: Log, build: (tmp: string, logFile: WriteStream) => Promise<void>): Promise<void> {
  await fs.mkdir(cacheDir, { recursive: true });
  await removeAbandonedTempDirs(cacheDir, path.basename(finalDir));
  const tmp = path.join(cacheDir, `.tmp-${path.basename(finalDir)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(tmp);
  const logPath = path.join(tmp, 'provision.log');
  const logFile = createWriteStream(logPath);
  try {
    await build(tmp, logFile);
    await new Promise<void>((resolve) => logFile.end(resolve));
    try {
      await fs.rename(tmp, finalDir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      log(`${finalDir} appeared meanwhile (another process); keeping that one`);
      await fs.rm(tmp, { recursive: true, force: true });
    }
  } catch (err) {
    await new Promise<void>((resolve) => (logFile.closed ? resolve() : logFile.end(resolve)));
    // Keep the log for diagnosis, drop the half-built entry.
    const kept = path.join(cacheDir, `failed-${path.basename(finalDir)}.log`);
    await fs.copyFile(logPath, kept).catch(() => undefined);
    await fs.rm(tmp, { recursive: true, force: true });
    if (err instanceof TemporalServerUnavailableError) throw err;
    throw new Error(`Provisioning ${path.basename(finalDir)} failed (full log: ${kept}): ${(err as Error).message}`, { cause: err });
  }
}

/** Removes temp dirs left by provisioning runs that died (their pid, on this host, is gone). */
async function removeAbandonedTempDirs(cacheDir: string, base: string): Promise<void> {
  const prefix = `.tmp-${base}-`;
  for (const name of await fs.readdir(cacheDir)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && !processExists(pid)) await fs.rm(path.join(cacheDir, name), { recursive: true, force: true });
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/**
 * Serializes provisioning of one entry across processes (e.g. parallel jest workers) with a lock directory, so
 * only one builds and the others wait for its result. Correctness does not depend on it (buildInTempDir's
 * rename does that); it only avoids building twice. Returns whether this call did the work.
 */
export async function withProvisionLock(cacheDir: string, name: string, isDone: () => Promise<boolean>, log: Log, work: () => Promise<void>): Promise<boolean> {
  await fs.mkdir(cacheDir, { recursive: true });
  const lockDir = path.join(cacheDir, `.lock-${name}`);
  let announced = false;
  for (;;) {
    if (await isDone()) return false;
    try {
      await fs.mkdir(lockDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (await lockIsStale(lockDir)) {
        await fs.rm(lockDir, { recursive: true, force: true });
        continue;
      }
      if (!announced) log(`waiting for another process that is provisioning ${name} (lock ${lockDir})`);
      announced = true;
      await sleep(1000);
      continue;
    }
    try {
      await fs.writeFile(path.join(lockDir, 'owner.json'), JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString() }));
      if (await isDone()) return false;
      await work();
      return true;
    } finally {
      await fs.rm(lockDir, { recursive: true, force: true });
    }
  }
}

/** A lock is stale if its owner (on this host) is gone, or it is older than 30 minutes, or ownerless for a minute. */
async function lockIsStale(lockDir: string): Promise<boolean> {
  try {
    const owner = JSON.parse(await fs.readFile(path.join(lockDir, 'owner.json'), 'utf8')) as { pid: number; host: string };
    if (owner.host === os.hostname() && !processExists(owner.pid)) return true;
    return Date.now() - (await fs.stat(lockDir)).mtimeMs > 30 * 60_000;
  } catch {
    try {
      return Date.now() - (await fs.stat(lockDir)).mtimeMs > 60_000;
    } catch {
      return false; // lock vanished: not stale, the next mkdir will tell
    }
  }
}
