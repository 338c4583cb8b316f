/**
 * The Temporal CLI, whose `server start-dev` is the dev server (Web UI built in), as a server kind of the ladder:
 * provisioned by `go install` into cli-<version>-<platform>-<arch>/bin/temporal in the cache.
 */
import * as path from 'node:path';
import { run } from './commands';
import { writeManifest } from './cache';
import { TemporalServerUnavailableError } from './errors';
import { isExecutable, which } from './files';
import {
  type AddressResolution,
  type ExecutableResolution,
  type ProvisionOptions,
  type ProvisionResult,
  provisionServer,
  type ResolveOptions,
  resolveServer,
  type ServerKind,
} from './ladder';
import { SDK_CDN } from './sdk-download';

export const TEMPORAL_CLI_VERSION = '1.5.1';
/** Later CLI tags carry a `replace` directive that `go install pkg@version` refuses; 1.5.1 installs cleanly. */
const CLI_PACKAGE = 'github.com/temporalio/cli/cmd/temporal';

export type DevServerResolution = AddressResolution | ExecutableResolution;

function cliDir(cacheDir: string): string {
  return path.join(cacheDir, `cli-${TEMPORAL_CLI_VERSION}-${process.platform}-${process.arch}`);
}

export function cliPath(cacheDir: string): string {
  return path.join(cliDir(cacheDir), 'bin', process.platform === 'win32' ? 'temporal.exe' : 'temporal');
}

const temporalCli: ServerKind<{ go: string }> & { addressVariable: string } = {
  label: 'dev server',
  title: `dev server (Temporal CLI ${TEMPORAL_CLI_VERSION})`,
  missing: 'Temporal CLI',
  pathVariable: 'TEMPORAL_CLI_PATH',
  addressVariable: 'TEMPORAL_ADDRESS',
  lockName: 'cli',
  entryDir: cliDir,
  executablePath: cliPath,
  isCached: (cacheDir) => isExecutable(cliPath(cacheDir)),

  async findTools(env) {
    const go = await which('go', env);
    if (go) return { go };
    throw new TemporalServerUnavailableError(
      'Cannot provision the Temporal dev server: `go` is not on PATH (and no cached copy, TEMPORAL_CLI_PATH, ' +
        `TEMPORAL_ADDRESS, or reachable ${SDK_CDN}). Install Go (https://go.dev/dl/), or set TEMPORAL_CLI_PATH to a ` +
        'temporal CLI binary, or TEMPORAL_ADDRESS=host:port to use a running server.',
    );
  },

  async build({ tmp, logFile, tools: { go }, env, log }) {
    log(`provisioning Temporal CLI ${TEMPORAL_CLI_VERSION}: go install ${CLI_PACKAGE}@v${TEMPORAL_CLI_VERSION} (a few minutes the first time)`);
    const ldflags = `-ldflags=-s -w -X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`;
    await run(go, ['install', '-trimpath', ldflags, `${CLI_PACKAGE}@v${TEMPORAL_CLI_VERSION}`], {
      cwd: tmp,
      // CGO off: the CLI's SQLite is pure Go, and this way no C compiler is needed.
      env: { ...env, GOBIN: path.join(tmp, 'bin'), CGO_ENABLED: '0' },
      logFile,
      label: 'go install',
      log,
    });
    const binary = path.join(tmp, 'bin', path.basename(cliPath(tmp)));
    const version = await run(binary, ['--version'], { cwd: tmp, env, logFile, label: 'temporal --version' });
    await writeManifest(tmp, { component: 'temporal-cli', version: TEMPORAL_CLI_VERSION, reports: version.trim(), go });
  },
};

export function resolveDevServer(opts: ResolveOptions = {}): Promise<DevServerResolution> {
  return resolveServer(temporalCli, opts);
}

/** Ensures the Temporal CLI is in the cache (go install into a temp dir, then rename). Idempotent; safe concurrently. */
export function provisionDevServer(opts: ProvisionOptions = {}): Promise<ProvisionResult> {
  return provisionServer(temporalCli, opts);
}
