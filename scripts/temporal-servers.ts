/**
 * Finds the Temporal servers that tests and `npm start` run against, provisioning them when needed
 * (DESIGN.md, "Temporal servers"). Each server is resolved in this order, and one stderr line says which
 * one was used:
 *   1. explicit: TEMPORAL_ADDRESS (a running server; start nothing), TEMPORAL_CLI_PATH, TEMPORAL_TEST_SERVER_PATH;
 *   2. a copy provisioned earlier into the cache outside the checkout (temporalCacheDir());
 *   3. the SDK's own download, when its CDN answers;
 *   4. provisioning from package registries: the CLI by `go install`, the time-skipping test server from Maven
 *      Central, started through a generated wrapper script.
 *
 * Cache layout (temporalCacheDir(), default ~/.cache/meterloop/temporal):
 *   cli-<version>-<platform>-<arch>/bin/temporal      Temporal CLI (dev server), built by go install
 *   cli-<version>-<platform>-<arch>/manifest.json
 *   test-server-<version>/temporal-test-server        wrapper script: exec java ... <port>
 *   test-server-<version>/lib/*.jar, launcher.jar     Maven Central jars + our loopback-only launcher
 *   test-server-<version>/app.jsa                     AppCDS archive (JVM start-up ~3x faster)
 *   test-server-<version>/manifest.json, provision.log
 *   sdk-download/                                     the SDK's own downloads (step 3)
 * Entries are built in a temp dir next to them and renamed into place, so a half-built entry is never seen.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
// Type-only: @temporalio/testing is a dev dependency, loaded at run time only on the SDK-download path.
import type { EphemeralServerExecutable } from '@temporalio/testing';

export const TEMPORAL_CLI_VERSION = '1.5.1';
export const TEMPORAL_TEST_SERVER_VERSION = '1.32.1';
/** Later CLI tags carry a `replace` directive that `go install pkg@version` refuses; 1.5.1 installs cleanly. */
const CLI_PACKAGE = 'github.com/temporalio/cli/cmd/temporal';
const SDK_CDN = 'https://temporal.download/';
const CDN_PROBE_TIMEOUT_MS = 3000;

export type SearchAttributeTypeName = 'Keyword' | 'Text' | 'Int' | 'Double' | 'Bool' | 'Datetime' | 'KeywordList';
export type ServerSource = 'env' | 'cache' | 'sdk-download' | 'provisioned';

export type ExecutableResolution = { kind: 'executable'; executable: EphemeralServerExecutable; source: ServerSource };
export type DevServerResolution = { kind: 'address'; address: string } | ExecutableResolution;
export type TimeSkippingServerResolution = ExecutableResolution;

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
  log?: (line: string) => void;
}

export interface ProvisionOptions {
  cacheDir?: string;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

export interface ProvisionResult {
  /** The executable to hand to the SDK as `{ type: 'existing-path', path }`. */
  path: string;
  /** True if this call built it; false if it was already in the cache. */
  provisioned: boolean;
  durationMs: number;
}

/** Nothing usable was found and provisioning was not allowed or not possible; the message says what to do. */
export class TemporalServerUnavailableError extends Error {
  override name = 'TemporalServerUnavailableError';
}

const defaultLog = (line: string): void => {
  process.stderr.write(`[temporal] ${line}\n`);
};

/** `${METERLOOP_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/meterloop}/temporal`: outside the checkout, so a fresh clone reuses it. */
export function temporalCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const root = env.METERLOOP_CACHE_DIR || path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'meterloop');
  return path.resolve(root, 'temporal');
}

function cliDir(cacheDir: string): string {
  return path.join(cacheDir, `cli-${TEMPORAL_CLI_VERSION}-${process.platform}-${process.arch}`);
}
function cliPath(cacheDir: string): string {
  return path.join(cliDir(cacheDir), 'bin', process.platform === 'win32' ? 'temporal.exe' : 'temporal');
}
function testServerDir(cacheDir: string): string {
  return path.join(cacheDir, `test-server-${TEMPORAL_TEST_SERVER_VERSION}`);
}
function testServerPath(cacheDir: string): string {
  return path.join(testServerDir(cacheDir), 'temporal-test-server');
}

/** Where provisioned copies live (whether or not they exist yet). */
export function cachedServerPaths(cacheDir: string = temporalCacheDir()): { cli: string; testServer: string } {
  return { cli: cliPath(cacheDir), testServer: testServerPath(cacheDir) };
}

// ---------------------------------------------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------------------------------------------

export async function resolveDevServer(opts: ResolveOptions = {}): Promise<DevServerResolution> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const cacheDir = opts.cacheDir ?? temporalCacheDir(env);
  const what = `dev server (Temporal CLI ${TEMPORAL_CLI_VERSION})`;

  if (env.TEMPORAL_ADDRESS) {
    log(`dev server: using the running server at ${env.TEMPORAL_ADDRESS} (TEMPORAL_ADDRESS); starting nothing`);
    return { kind: 'address', address: env.TEMPORAL_ADDRESS };
  }
  if (env.TEMPORAL_CLI_PATH) {
    const p = await requireExecutable(env.TEMPORAL_CLI_PATH, 'TEMPORAL_CLI_PATH');
    log(`dev server: ${p} (TEMPORAL_CLI_PATH)`);
    return existing(p, 'env');
  }
  if (await isExecutable(cliPath(cacheDir))) {
    log(`${what}: cached ${cliPath(cacheDir)}`);
    return existing(cliPath(cacheDir), 'cache');
  }
  const sdk = await sdkDownload(opts, env, cacheDir);
  if (sdk) {
    log(`${what}: not cached; ${SDK_CDN} is reachable, so the SDK downloads it itself`);
    return { kind: 'executable', executable: sdk, source: 'sdk-download' };
  }
  if (opts.provision === false) {
    throw new TemporalServerUnavailableError(
      `No Temporal CLI: not in ${cliDir(cacheDir)}, TEMPORAL_CLI_PATH/TEMPORAL_ADDRESS unset, and ${SDK_CDN} unreachable. Run \`npm run provision\`.`,
    );
  }
  const r = await provisionDevServer({ cacheDir, env, log });
  log(`${what}: ${r.provisioned ? 'provisioned' : 'cached'} ${r.path}`);
  return existing(r.path, r.provisioned ? 'provisioned' : 'cache');
}

export async function resolveTimeSkippingServer(opts: ResolveOptions = {}): Promise<TimeSkippingServerResolution> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const cacheDir = opts.cacheDir ?? temporalCacheDir(env);
  const what = `time-skipping test server ${TEMPORAL_TEST_SERVER_VERSION}`;

  if (env.TEMPORAL_TEST_SERVER_PATH) {
    const p = await requireExecutable(env.TEMPORAL_TEST_SERVER_PATH, 'TEMPORAL_TEST_SERVER_PATH');
    log(`time-skipping test server: ${p} (TEMPORAL_TEST_SERVER_PATH)`);
    return existing(p, 'env');
  }
  if (await isTestServerCached(cacheDir)) {
    log(`${what}: cached ${testServerPath(cacheDir)}`);
    return existing(testServerPath(cacheDir), 'cache');
  }
  const sdk = await sdkDownload(opts, env, cacheDir);
  if (sdk) {
    log(`${what}: not cached; ${SDK_CDN} is reachable, so the SDK downloads it itself`);
    return { kind: 'executable', executable: sdk, source: 'sdk-download' };
  }
  if (opts.provision === false) {
    throw new TemporalServerUnavailableError(
      `No time-skipping test server: not in ${testServerDir(cacheDir)}, TEMPORAL_TEST_SERVER_PATH unset, and ${SDK_CDN} unreachable. Run \`npm run provision\`.`,
    );
  }
  const r = await provisionTimeSkippingServer({ cacheDir, env, log });
  log(`${what}: ${r.provisioned ? 'provisioned' : 'cached'} ${r.path}`);
  return existing(r.path, r.provisioned ? 'provisioned' : 'cache');
}

function existing(p: string, source: ServerSource): ExecutableResolution {
  return { kind: 'executable', executable: { type: 'existing-path', path: p }, source };
}

async function sdkDownload(opts: ResolveOptions, env: NodeJS.ProcessEnv, cacheDir: string): Promise<EphemeralServerExecutable | undefined> {
  const allowed = opts.sdkDownload ?? env.METERLOOP_TEMPORAL_SDK_DOWNLOAD !== '0';
  if (!allowed || !(await cdnReachable())) return undefined;
  // Keep the SDK's downloads in our cache too (its default is the OS temp dir); the SDK does not create the dir.
  const downloadDir = path.join(cacheDir, 'sdk-download');
  await fs.mkdir(downloadDir, { recursive: true });
  return { type: 'cached-download', downloadDir };
}

let cdnProbe: Promise<boolean> | undefined;

/** Whether the SDK's download CDN answers at all (any HTTP status counts); probed once per process. */
export function cdnReachable(): Promise<boolean> {
  cdnProbe ??= new Promise<boolean>((resolve) => {
    // An overall timer, because the socket timeout alone does not cover a hanging DNS lookup.
    const timer = setTimeout(() => {
      req.destroy();
      resolve(false);
    }, CDN_PROBE_TIMEOUT_MS);
    const req = https.request(SDK_CDN, { method: 'HEAD' }, (res) => {
      res.resume();
      clearTimeout(timer);
      resolve(true);
    });
    req.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
    req.end();
  });
  return cdnProbe;
}

// ---------------------------------------------------------------------------------------------------------------
// Provisioning: the Temporal CLI (dev server) by go install
// ---------------------------------------------------------------------------------------------------------------

/** Ensures the Temporal CLI is in the cache (go install into a temp dir, then rename). Idempotent; safe concurrently. */
export async function provisionDevServer(opts: ProvisionOptions = {}): Promise<ProvisionResult> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const cacheDir = opts.cacheDir ?? temporalCacheDir(env);
  const started = Date.now();
  const target = cliPath(cacheDir);

  const provisioned = await withProvisionLock(cacheDir, 'cli', () => isExecutable(target), log, async () => {
    const go = await which('go', env);
    if (!go) {
      throw new TemporalServerUnavailableError(
        'Cannot provision the Temporal dev server: `go` is not on PATH (and no cached copy, TEMPORAL_CLI_PATH, ' +
          `TEMPORAL_ADDRESS, or reachable ${SDK_CDN}). Install Go (https://go.dev/dl/), or set TEMPORAL_CLI_PATH to a ` +
          'temporal CLI binary, or TEMPORAL_ADDRESS=host:port to use a running server.',
      );
    }
    await buildInTempDir(cacheDir, cliDir(cacheDir), log, async (tmp, logFile) => {
      log(`provisioning Temporal CLI ${TEMPORAL_CLI_VERSION}: go install ${CLI_PACKAGE}@v${TEMPORAL_CLI_VERSION} (a few minutes the first time)`);
      await run(go, ['install', '-trimpath', `-ldflags=-s -w -X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`, `${CLI_PACKAGE}@v${TEMPORAL_CLI_VERSION}`], {
        cwd: tmp,
        // CGO off: the CLI's SQLite is pure Go, and this way no C compiler is needed.
        env: { ...env, GOBIN: path.join(tmp, 'bin'), CGO_ENABLED: '0' },
        logFile,
        label: 'go install',
        log,
      });
      const version = await run(path.join(tmp, 'bin', path.basename(target)), ['--version'], { cwd: tmp, env, logFile, label: 'temporal --version' });
      await writeManifest(tmp, { component: 'temporal-cli', version: TEMPORAL_CLI_VERSION, reports: version.trim(), go });
    });
  });
  return { path: target, provisioned, durationMs: Date.now() - started };
}

// ---------------------------------------------------------------------------------------------------------------
// Provisioning: the time-skipping test server from Maven Central
// ---------------------------------------------------------------------------------------------------------------

async function isTestServerCached(cacheDir: string): Promise<boolean> {
  return (await isExecutable(testServerPath(cacheDir))) && (await exists(path.join(testServerDir(cacheDir), 'manifest.json')));
}

/**
 * Ensures the time-skipping test server is in the cache: jars from Maven Central, a small launcher that binds
 * 127.0.0.1 only (the stock main binds every interface), an AppCDS archive, and the wrapper script the SDK runs.
 * Idempotent; safe concurrently.
 */
export async function provisionTimeSkippingServer(opts: ProvisionOptions = {}): Promise<ProvisionResult> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const cacheDir = opts.cacheDir ?? temporalCacheDir(env);
  const started = Date.now();

  const provisioned = await withProvisionLock(cacheDir, 'test-server', () => isTestServerCached(cacheDir), log, async () => {
    const java = await findJava(env);
    const mvn = await which('mvn', env);
    if (!java || !mvn) {
      const missing = [java ? undefined : 'java (a JDK, 17 or newer)', mvn ? undefined : 'mvn (Apache Maven)'].filter(Boolean).join(' and ');
      throw new TemporalServerUnavailableError(
        `Cannot provision the Temporal time-skipping test server: ${missing} not found (and no cached copy, ` +
          `TEMPORAL_TEST_SERVER_PATH, or reachable ${SDK_CDN}). Install them (e.g. apt-get install openjdk-17-jdk-headless maven), ` +
          'or set TEMPORAL_TEST_SERVER_PATH to a temporal-test-server executable.',
      );
    }
    await buildInTempDir(cacheDir, testServerDir(cacheDir), log, (tmp, logFile) => buildTestServer(tmp, logFile, java, mvn, env, log));
  });
  return { path: testServerPath(cacheDir), provisioned, durationMs: Date.now() - started };
}

const POM = `<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by meterloop scripts/temporal-servers.ts: only used to fetch the test server's jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.meterloop</groupId>
  <artifactId>temporal-test-server-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>${TEMPORAL_TEST_SERVER_VERSION}</version>
    </dependency>
    <!-- Silences SLF4J's "no binding" warnings on every start. -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-nop</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
`;

/**
 * Same behaviour as io.temporal.testserver.TestServer (`<port> [--enable-time-skipping]`, time skipping locked
 * until a client unlocks it), but bound to 127.0.0.1 instead of every interface.
 */
const LAUNCHER_CLASS = 'LoopbackTestServer';
const LAUNCHER_SOURCE = `import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.temporal.internal.testservice.GRPCServerHelper;
import io.temporal.internal.testservice.TestServicesStarter;
import java.net.InetAddress;
import java.net.InetSocketAddress;

/** Generated by meterloop: the Temporal test server, listening on 127.0.0.1 only. */
public final class ${LAUNCHER_CLASS} {
  public static void main(String[] args) throws Exception {
    if (args.length < 1 || args.length > 2) {
      System.err.println("Usage: ${LAUNCHER_CLASS} <port> [--enable-time-skipping]");
      System.exit(2);
    }
    int port = Integer.parseInt(args[0]);
    boolean enableTimeSkipping = args.length == 2 && "--enable-time-skipping".equalsIgnoreCase(args[1]);
    TestServicesStarter services = new TestServicesStarter(!enableTimeSkipping, 0);
    NettyServerBuilder builder = NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getByName("127.0.0.1"), port));
    GRPCServerHelper.registerServicesAndHealthChecks(services.getServices(), builder);
    Server server = builder.build().start();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      server.shutdownNow();
      services.close();
    }));
    server.awaitTermination();
  }
}
`;

/** JVM flags shared by the CDS training run and the wrapper (C1 only: the test server needs start-up, not peak speed). */
const JVM_FLAGS = ['-XX:TieredStopAtLevel=1', '-Xshare:auto'];
/** An archive made by another JVM build is ignored (-Xshare:auto); these keep that silent. */
const CDS_QUIET = ['-Xlog:cds=off', '-Xlog:cds+dynamic=off'];
const CDS_ARCHIVE = 'app.jsa';

async function buildTestServer(tmp: string, logFile: WriteStream, java: string, mvn: string, env: NodeJS.ProcessEnv, log: (l: string) => void): Promise<void> {
  log(`provisioning time-skipping test server ${TEMPORAL_TEST_SERVER_VERSION}: io.temporal:temporal-test-server from Maven Central`);
  await fs.writeFile(path.join(tmp, 'pom.xml'), POM);
  await run(mvn, ['-q', '-B', '-Dstyle.color=never', '-f', 'pom.xml', 'dependency:copy-dependencies', '-DoutputDirectory=lib', '-DincludeScope=runtime'], {
    cwd: tmp,
    env,
    logFile,
    label: 'mvn dependency:copy-dependencies',
    log,
  });
  const jars = (await fs.readdir(path.join(tmp, 'lib'))).filter((f) => f.endsWith('.jar')).sort();
  if (!jars.some((j) => j.startsWith('temporal-test-server-'))) throw new Error(`mvn did not fetch temporal-test-server (see ${path.join(tmp, 'provision.log')})`);
  // Relative paths, explicit and sorted: the CDS archive records the class path, and the wrapper cd's into its own
  // directory, so the archive stays valid when the cache directory moves (e.g. a CI cache restored elsewhere).
  const classPath = jars.map((j) => `lib/${j}`);

  let mainClass = 'io.temporal.testserver.TestServer';
  const jdkBin = path.dirname(java);
  const [javac, jar] = [path.join(jdkBin, 'javac'), path.join(jdkBin, 'jar')];
  if ((await isExecutable(javac)) && (await isExecutable(jar))) {
    await fs.mkdir(path.join(tmp, 'launcher', 'classes'), { recursive: true });
    await fs.writeFile(path.join(tmp, 'launcher', `${LAUNCHER_CLASS}.java`), LAUNCHER_SOURCE);
    await run(javac, ['-nowarn', '-d', 'launcher/classes', '-cp', classPath.join(path.delimiter), `launcher/${LAUNCHER_CLASS}.java`], { cwd: tmp, env, logFile, label: 'javac' });
    // A jar, not a class directory: CDS refuses non-empty directories on the class path.
    await run(jar, ['cf', 'launcher.jar', '-C', 'launcher/classes', '.'], { cwd: tmp, env, logFile, label: 'jar' });
    classPath.push('launcher.jar');
    mainClass = LAUNCHER_CLASS;
  } else {
    log(`warning: no javac/jar next to ${java}; using the stock test server main, which listens on all interfaces, not only 127.0.0.1`);
  }
  const cp = classPath.join(path.delimiter);

  // Class-data sharing: run the server once, exercise it, and let the JVM dump the classes it loaded at exit.
  const baseArgs = [...JVM_FLAGS, ...CDS_QUIET, '-cp', cp, mainClass];
  const withoutCds = await timeServerStart(java, baseArgs, tmp);
  let withCds: number | undefined;
  try {
    await timeServerStart(java, [`-XX:ArchiveClassesAtExit=${CDS_ARCHIVE}`, ...baseArgs], tmp, 'SIGTERM');
    if (await exists(path.join(tmp, CDS_ARCHIVE))) withCds = await timeServerStart(java, [`-XX:SharedArchiveFile=${CDS_ARCHIVE}`, ...baseArgs], tmp);
  } catch (err) {
    logFile.write(`CDS training failed: ${String(err)}\n`);
  }
  if (withCds === undefined) {
    await fs.rm(path.join(tmp, CDS_ARCHIVE), { force: true });
    log('warning: could not create a class-data-sharing archive (needs JDK 13+); the test server starts without it');
  }

  const javaArgs = [...(withCds === undefined ? [] : [`-XX:SharedArchiveFile=${CDS_ARCHIVE}`]), ...baseArgs];
  const wrapper = `#!/bin/sh
# Temporal time-skipping test server ${TEMPORAL_TEST_SERVER_VERSION}, provisioned by meterloop (scripts/temporal-servers.ts).
# The Temporal SDK runs it as: temporal-test-server <port> [extra args].
# Class path and CDS archive are relative to this directory, so the cache directory can be moved.
dir=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P) || exit 1
cd "$dir" || exit 1
# The JVM the CDS archive was made with; another one works too, it just ignores the archive.
java=${shellQuote(java)}
[ -x "$java" ] || java=java
# exec, so that the JVM replaces this shell: the SDK's kill at teardown must reach the JVM, or it outlives the test.
exec "$java" ${javaArgs.map(shellQuote).join(' ')} "$@"
`;
  await fs.writeFile(path.join(tmp, 'temporal-test-server'), wrapper, { mode: 0o755 });
  // Smoke-test the wrapper exactly as the SDK will run it.
  const viaWrapper = await timeServerStart(path.join(tmp, 'temporal-test-server'), [], tmp);
  const s = (ms: number | undefined): string => (ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(2)} s`);
  log(`test server start-up to first gRPC answer: ${s(withCds)} with AppCDS, ${s(withoutCds)} without; via wrapper ${s(viaWrapper)}`);
  await writeManifest(tmp, {
    component: 'temporal-test-server',
    version: TEMPORAL_TEST_SERVER_VERSION,
    java,
    mainClass,
    loopbackOnly: mainClass === LAUNCHER_CLASS,
    cds: withCds !== undefined,
    startupMs: { withCds, withoutCds, viaWrapper },
  });
}

/**
 * Starts a test-server command with a free port appended, returns the ms until it answers gRPC, then stops it
 * (SIGKILL, as the SDK does; SIGTERM for the CDS training run, whose archive is written at a clean JVM exit).
 */
async function timeServerStart(cmd: string, args: string[], cwd: string, stopWith: NodeJS.Signals = 'SIGKILL'): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(cmd, [...args, String(port)], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  let dead = false; // exited, or never started (spawn errors emit 'error' and no 'exit')
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (err) => {
      stderr += `${err.message}\n`;
      resolve();
    });
  }).then(() => {
    dead = true;
  });
  try {
    const address = `127.0.0.1:${port}`;
    await waitForGrpc(address, 30_000, () => dead, async (connection) => {
      // What the SDK's readiness probe and a first test do: health, system info, namespace.
      await connection.workflowService.getSystemInfo({});
      await connection.workflowService.describeNamespace({ namespace: 'default' });
    });
    return performance.now() - started;
  } catch (err) {
    throw new Error(`${cmd} did not answer on port ${port}: ${String(err)}\n${stderr}`, { cause: err });
  } finally {
    if (!dead) child.kill(stopWith);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Dev server for `npm start` (and tests)
// ---------------------------------------------------------------------------------------------------------------

export interface StartDevServerOptions {
  /** gRPC port; default a free one. */
  port?: number;
  /** Web UI port; default a free one. */
  uiPort?: number;
  /** Serve the Web UI; default true. */
  ui?: boolean;
  /** SQLite file to persist state across runs; default in-memory. Its directory is created. */
  dbFilename?: string;
  /** Default 'default'. */
  namespace?: string;
  searchAttributes: Record<string, SearchAttributeTypeName>;
  /** Receives the server's output and our status lines; default stderr. */
  log?: (line: string) => void;
  /** Skip resolution (e.g. a test that already resolved); default resolveDevServer(). */
  resolution?: DevServerResolution;
  /** How long to wait for the server to answer; default 60 s. */
  readyTimeoutMs?: number;
}

export interface RunningDevServer {
  /** host:port of the frontend gRPC service. */
  address: string;
  /** Web UI, when we started one. */
  uiUrl: string | undefined;
  namespace: string;
  source: ServerSource | 'address';
  /** Stops the server (no-op for TEMPORAL_ADDRESS). Safe to call twice. */
  stop(): Promise<void>;
}

/** Dev-server CLI names of search attribute types, as the SDK's SearchAttributeType names them. */
const SDK_SEARCH_ATTRIBUTE_TYPE = {
  Keyword: 'KEYWORD',
  Text: 'TEXT',
  Int: 'INT',
  Double: 'DOUBLE',
  Bool: 'BOOL',
  Datetime: 'DATETIME',
  KeywordList: 'KEYWORD_LIST',
} as const;

/**
 * Starts the Temporal CLI dev server as a child process on 127.0.0.1 and waits until it answers with the namespace
 * and search attributes in place. For TEMPORAL_ADDRESS it starts nothing.
 */
export async function startDevServer(opts: StartDevServerOptions): Promise<RunningDevServer> {
  const log = opts.log ?? defaultLog;
  const namespace = opts.namespace ?? 'default';
  const ui = opts.ui ?? true;
  const resolution = opts.resolution ?? (await resolveDevServer({ log }));
  if (resolution.kind === 'address') {
    return { address: resolution.address, uiUrl: undefined, namespace, source: 'address', stop: async () => undefined };
  }
  const port = opts.port ?? (await freePort());
  const uiPort = ui ? (opts.uiPort ?? (await freePort())) : undefined;
  const uiUrl = uiPort === undefined ? undefined : `http://127.0.0.1:${uiPort}`;
  if (opts.dbFilename) await fs.mkdir(path.dirname(path.resolve(opts.dbFilename)), { recursive: true });

  if (resolution.executable.type === 'cached-download') {
    // The SDK downloads and runs the CLI itself; it passes the same flags as below.
    const { TestWorkflowEnvironment } = await import('@temporalio/testing');
    const { defineSearchAttributeKey } = await import('@temporalio/common');
    const env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: resolution.executable,
        ip: '127.0.0.1',
        port,
        ui,
        uiPort,
        namespace,
        dbFilename: opts.dbFilename,
        log: { format: 'pretty', level: 'warn' },
        searchAttributes: Object.entries(opts.searchAttributes).map(([name, type]) => defineSearchAttributeKey(name, SDK_SEARCH_ATTRIBUTE_TYPE[type])),
      },
    });
    let stopped: Promise<void> | undefined;
    return { address: env.address, uiUrl, namespace, source: resolution.source, stop: () => (stopped ??= env.teardown()) };
  }

  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    ...(uiPort === undefined ? ['--headless'] : ['--ui-port', String(uiPort)]),
    '--namespace',
    namespace,
    '--log-level',
    'warn',
    ...(opts.dbFilename ? ['--db-filename', opts.dbFilename] : []),
    // The same server features the SDK's own dev server turns on, so tests and `npm start` behave alike.
    ...['frontend.enableUpdateWorkflowExecution=true', 'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true'].flatMap((v) => ['--dynamic-config-value', v]),
    ...Object.entries(opts.searchAttributes).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
  ];
  const child = spawn(resolution.executable.path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  let dead = false; // exited, or never started (spawn errors emit 'error' and no 'exit')
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (err) => {
      tail += `cannot run ${resolution.executable.type === 'existing-path' ? resolution.executable.path : 'the CLI'}: ${err.message}\n`;
      resolve();
    });
  }).then(() => {
    dead = true;
  });
  let stopping = false;
  const forward = (chunk: Buffer): void => {
    tail = (tail + chunk.toString()).slice(-4000);
    // Once we stop it, the server's warnings about its own connections closing are only noise.
    if (stopping) return;
    for (const line of chunk.toString().split('\n')) if (line.trim()) log(`dev server: ${line}`);
  };
  child.stdout.on('data', forward);
  child.stderr.on('data', forward);
  // Never leave the server running when this process exits without calling stop().
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const isDead = (): boolean => dead;

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      process.removeListener('exit', killOnExit);
      stopping = true;
      if (!isDead()) {
        child.kill('SIGTERM'); // graceful, so a SQLite file is left consistent
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
    })());

  const address = `127.0.0.1:${port}`;
  try {
    await waitForGrpc(address, opts.readyTimeoutMs ?? 60_000, isDead, async (connection) => {
      await connection.workflowService.describeNamespace({ namespace });
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
      const missing = Object.keys(opts.searchAttributes).filter((n) => !(n in (customAttributes ?? {})));
      if (missing.length) throw new Error(`search attributes not registered yet: ${missing.join(', ')}`);
    });
  } catch (err) {
    await stop();
    throw new Error(`Temporal dev server did not come up on ${address}: ${String(err)}\n${tail}`, { cause: err });
  }
  log(`dev server: ${address}${uiUrl ? `, UI ${uiUrl}` : ''}${opts.dbFilename ? `, state in ${opts.dbFilename}` : ''}`);
  return { address, uiUrl, namespace, source: resolution.source, stop };
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

/** A port that was free on 127.0.0.1 a moment ago (the OS picks it by binding port 0). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Polls until `check` succeeds against the server at `address`. A plain TCP probe comes first because a gRPC
 * connection attempt to a closed port backs off for about a second.
 */
async function waitForGrpc(address: string, timeoutMs: number, isDead: () => boolean, check: (c: Connection) => Promise<void>): Promise<void> {
  const [host, portText] = [address.slice(0, address.lastIndexOf(':')), address.slice(address.lastIndexOf(':') + 1)];
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = new Error('timed out');
  while (Date.now() < deadline) {
    if (isDead()) throw new Error('the server process exited');
    if (await tcpOpen(host, Number(portText))) {
      let connection: Connection | undefined;
      try {
        connection = await Connection.connect({ address, connectTimeout: 2000 });
        const c = connection;
        // A deadline on every call: whatever holds the port may not speak gRPC at all (e.g. a port clash).
        await c.withDeadline(Date.now() + 3000, async () => {
          await c.healthService.check({});
          await check(c);
        });
        return;
      } catch (err) {
        lastError = err;
      } finally {
        await connection?.close().catch(() => undefined);
      }
    }
    await sleep(25);
  }
  throw lastError;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

async function isExecutable(p: string): Promise<boolean> {
  try {
    const st = await fs.stat(p);
    if (!st.isFile()) return false;
    await fs.access(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function requireExecutable(p: string, envVar: string): Promise<string> {
  const abs = path.resolve(p);
  if (!(await isExecutable(abs))) throw new TemporalServerUnavailableError(`${envVar}=${p} is not an executable file.`);
  return abs;
}

/** Looks a command up on PATH, like `command -v`. */
async function which(cmd: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && (await isExecutable(path.join(dir, cmd)))) return path.join(dir, cmd);
  }
  return undefined;
}

/** JAVA_HOME's java, else the one on PATH, resolved through symlinks so the wrapper keeps the JVM the archive fits. */
async function findJava(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const fromHome = env.JAVA_HOME ? path.join(env.JAVA_HOME, 'bin', 'java') : undefined;
  const java = fromHome && (await isExecutable(fromHome)) ? fromHome : await which('java', env);
  return java ? fs.realpath(java) : undefined;
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

async function writeManifest(dir: string, data: Record<string, unknown>): Promise<void> {
  await fs.writeFile(path.join(dir, 'manifest.json'), `${JSON.stringify({ ...data, createdAt: new Date().toISOString() }, null, 2)}\n`);
}

interface RunOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  logFile: WriteStream;
  label: string;
  /** If given, a "still running" line every 30 s, since go install can be silent for minutes. */
  log?: (line: string) => void;
}

/** Runs a command, appending its output to the provisioning log; resolves with stdout, rejects with the log's tail. */
function run(cmd: string, args: string[], o: RunOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    o.logFile.write(`$ ${[cmd, ...args].map(shellQuote).join(' ')}\n`);
    const started = Date.now();
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let tail = '';
    const record = (d: Buffer): void => {
      o.logFile.write(d);
      tail = (tail + d.toString()).slice(-3000);
    };
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      record(d);
    });
    child.stderr.on('data', record);
    const heartbeat = o.log ? setInterval(() => o.log?.(`  ... ${o.label} still running (${Math.round((Date.now() - started) / 1000)} s)`), 30_000) : undefined;
    const done = (err?: Error): void => {
      if (heartbeat) clearInterval(heartbeat);
      o.logFile.write(`# ${o.label}: ${err ? err.message : 'ok'} after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      if (err) reject(err);
      else resolve(stdout);
    };
    child.once('error', (err) => done(new Error(`${o.label}: cannot run ${cmd}: ${err.message}`)));
    child.once('close', (code, signal) => (code === 0 ? done() : done(new Error(`${o.label} failed (${signal ?? `exit ${code}`}):\n${tail}`))));
  });
}

/**
 * Builds a cache entry in a fresh temp dir inside the cache (same filesystem), then renames it into place, so
 * readers only ever see a complete entry. If another process won the race, its entry is kept and ours dropped.
 */
async function buildInTempDir(cacheDir: string, finalDir: string, log: (l: string) => void, build: (tmp: string, logFile: WriteStream) => Promise<void>): Promise<void> {
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
async function withProvisionLock(cacheDir: string, name: string, isDone: () => Promise<boolean>, log: (l: string) => void, work: () => Promise<void>): Promise<boolean> {
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

/**
 * Registers search attributes on a server that has no start-up flag for them (the time-skipping test server),
 * so workflows can upsert them there as they do on the dev server and in docker-compose.
 */
export async function registerSearchAttributes(
  connection: Connection,
  searchAttributes: Record<string, 'Keyword' | 'Datetime' | 'Bool'>,
  namespace = 'default',
): Promise<void> {
  const indexedValueType = {
    Keyword: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    Datetime: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    Bool: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
  } as const;
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(Object.entries(searchAttributes).map(([name, type]) => [name, indexedValueType[type]])),
  });
}
