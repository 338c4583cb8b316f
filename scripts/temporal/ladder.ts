/**
 * The one resolution ladder both Temporal servers go through (DESIGN.md, "Temporal servers without downloads"),
 * each step announced in one log line:
 *   1. explicit: an address of a running server (start nothing) or a path to an executable, from the environment;
 *   2. a copy provisioned earlier into the cache outside the checkout;
 *   3. the SDK's own download, when its CDN answers;
 *   4. provisioning from package registries (what that means is the server kind's business: ./cli.ts, ./test-server.ts).
 */
import * as path from 'node:path';
import type { WriteStream } from 'node:fs';
import type { EphemeralServerExecutable } from '@temporalio/testing';
import { buildInTempDir, temporalCacheDir, withProvisionLock } from './cache';
import { defaultLog, type Log, TemporalServerUnavailableError } from './errors';
import { isExecutable } from './files';
import { SDK_CDN, sdkDownloadExecutable } from './sdk-download';

export type ServerSource = 'env' | 'cache' | 'sdk-download' | 'provisioned';
export type ExecutableResolution = { kind: 'executable'; executable: EphemeralServerExecutable; source: ServerSource };
export type AddressResolution = { kind: 'address'; address: string };

export interface ResolveOptions {
  /** Cache directory; default temporalCacheDir(). */
  cacheDir?: string;
  /** Allow step 4 (build/fetch from registries). Default true; `provision-temporal --check` passes false. */
  provision?: boolean;
  /** Allow step 3 (SDK download). Default true unless METERLOOP_TEMPORAL_SDK_DOWNLOAD=0. */
  sdkDownload?: boolean;
  /** Environment to read TEMPORAL_* from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where progress and the "which server" line go; default stderr. */
  log?: Log;
}

export interface ProvisionOptions {
  cacheDir?: string;
  env?: NodeJS.ProcessEnv;
  log?: Log;
}

export interface ProvisionResult {
  /** The executable to hand to the SDK as `{ type: 'existing-path', path }`. */
  path: string;
  /** True if this call built it; false if it was already in the cache. */
  provisioned: boolean;
  durationMs: number;
}

/** What the build step of a server kind gets: a temp dir that becomes the cache entry, and its provisioning log. */
export interface BuildContext<Tools> {
  tmp: string;
  logFile: WriteStream;
  tools: Tools;
  env: NodeJS.ProcessEnv;
  log: Log;
}

/** One server the ladder can resolve: its names, variables, cache entry, and how to provision it from registries. */
export interface ServerKind<Tools = unknown> {
  /** Names the explicit choices in log lines, e.g. 'dev server'. */
  label: string;
  /** Names it with its version, e.g. 'dev server (Temporal CLI 1.5.1)'. */
  title: string;
  /** What the "nothing usable" error says is missing, e.g. 'Temporal CLI'. */
  missing: string;
  /** Variable holding an explicit executable path. */
  pathVariable: string;
  /** Variable holding the address of a running server, for kinds that can use one. */
  addressVariable?: string;
  /** Name of the provisioning lock in the cache. */
  lockName: string;
  entryDir(cacheDir: string): string;
  executablePath(cacheDir: string): string;
  isCached(cacheDir: string): Promise<boolean>;
  /** Finds the tools provisioning needs, or throws TemporalServerUnavailableError saying what to install. */
  findTools(env: NodeJS.ProcessEnv): Promise<Tools>;
  /** Builds the cache entry in ctx.tmp. */
  build(ctx: BuildContext<Tools>): Promise<void>;
}

/** Resolves a server down the ladder; only kinds with an address variable can answer with an address. */
export function resolveServer<T>(kind: ServerKind<T> & { addressVariable: string }, opts?: ResolveOptions): Promise<AddressResolution | ExecutableResolution>;
export function resolveServer<T>(kind: ServerKind<T> & { addressVariable?: undefined }, opts?: ResolveOptions): Promise<ExecutableResolution>;
export async function resolveServer<T>(kind: ServerKind<T>, opts: ResolveOptions = {}): Promise<AddressResolution | ExecutableResolution> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const cacheDir = opts.cacheDir ?? temporalCacheDir(env);

  const address = kind.addressVariable && env[kind.addressVariable];
  if (address) {
    log(`${kind.label}: using the running server at ${address} (${kind.addressVariable}); starting nothing`);
    return { kind: 'address', address };
  }
  const explicitPath = env[kind.pathVariable];
  if (explicitPath) {
    const p = path.resolve(explicitPath);
    if (!(await isExecutable(p))) throw new TemporalServerUnavailableError(`${kind.pathVariable}=${explicitPath} is not an executable file.`);
    log(`${kind.label}: ${p} (${kind.pathVariable})`);
    return existing(p, 'env');
  }
  if (await kind.isCached(cacheDir)) {
    log(`${kind.title}: cached ${kind.executablePath(cacheDir)}`);
    return existing(kind.executablePath(cacheDir), 'cache');
  }
  const sdk = await sdkDownloadExecutable(opts.sdkDownload ?? env.METERLOOP_TEMPORAL_SDK_DOWNLOAD !== '0', cacheDir);
  if (sdk) {
    log(`${kind.title}: not cached; ${SDK_CDN} is reachable, so the SDK downloads it itself`);
    return { kind: 'executable', executable: sdk, source: 'sdk-download' };
  }
  if (opts.provision === false) {
    const variables = [kind.pathVariable, kind.addressVariable].filter(Boolean).join('/');
    throw new TemporalServerUnavailableError(
      `No ${kind.missing}: not in ${kind.entryDir(cacheDir)}, ${variables} unset, and ${SDK_CDN} unreachable. Run \`npm run provision\`.`,
    );
  }
  const r = await provisionServer(kind, { cacheDir, env, log });
  log(`${kind.title}: ${r.provisioned ? 'provisioned' : 'cached'} ${r.path}`);
  return existing(r.path, r.provisioned ? 'provisioned' : 'cache');
}

/** Ensures the server is in the cache, building it from registries if not. Idempotent; safe concurrently. */
export async function provisionServer<Tools>(kind: ServerKind<Tools>, opts: ProvisionOptions = {}): Promise<ProvisionResult> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const cacheDir = opts.cacheDir ?? temporalCacheDir(env);
  const started = Date.now();
  const provisioned = await withProvisionLock(cacheDir, kind.lockName, () => kind.isCached(cacheDir), log, async () => {
    const tools = await kind.findTools(env);
    await buildInTempDir(cacheDir, kind.entryDir(cacheDir), log, (tmp, logFile) => kind.build({ tmp, logFile, tools, env, log }));
  });
  return { path: kind.executablePath(cacheDir), provisioned, durationMs: Date.now() - started };
}

function existing(p: string, source: ServerSource): ExecutableResolution {
  return { kind: 'executable', executable: { type: 'existing-path', path: p }, source };
}
