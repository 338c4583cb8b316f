/**
 * The time-skipping test server as a server kind of the ladder, provisioned into test-server-<version>/ in the
 * cache: its jars from Maven Central (./test-server-pom.xml), our loopback-only launcher compiled against them
 * (./LoopbackTestServer.java), an AppCDS archive (./app-cds.ts), and the wrapper script the SDK runs, which
 * `exec`s java so the SDK's kill at teardown reaches the JVM.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { trainCdsArchive, CDS_ARCHIVE, timeServerStart } from './app-cds';
import { writeManifest } from './cache';
import { run, shellQuote, type RunOptions } from './commands';
import { TemporalServerUnavailableError } from './errors';
import { exists, isExecutable, which } from './files';
import {
  type BuildContext,
  type ExecutableResolution,
  type ProvisionOptions,
  type ProvisionResult,
  provisionServer,
  type ResolveOptions,
  resolveServer,
  type ServerKind,
} from './ladder';
import { SDK_CDN } from './sdk-download';

export const TEMPORAL_TEST_SERVER_VERSION = '1.32.1';
export type TimeSkippingServerResolution = ExecutableResolution;

const POM_FILE = path.join(__dirname, 'test-server-pom.xml');
const LAUNCHER_CLASS = 'LoopbackTestServer';
/** The launcher's Java sources: the main class and the ResetStickyTaskQueue it adds (package-private access). */
const LAUNCHER_SOURCES = [`${LAUNCHER_CLASS}.java`, 'StickyQueueReset.java'];
/** Part of the cache entry's name: bump it when a launcher source changes, so every cache rebuilds the launcher. */
const LAUNCHER_REVISION = 2;
const STOCK_MAIN_CLASS = 'io.temporal.testserver.TestServer';
/** JVM flags shared by the CDS training run and the wrapper (C1 only: the test server needs start-up, not peak speed). */
const JVM_FLAGS = ['-XX:TieredStopAtLevel=1', '-Xshare:auto'];
/** An archive made by another JVM build is ignored (-Xshare:auto); these keep that silent. */
const CDS_QUIET = ['-Xlog:cds=off', '-Xlog:cds+dynamic=off'];

type JavaTools = { java: string; mvn: string };
/** Options to run a provisioning command in the entry being built (with a heartbeat for the slow ones). */
type RunIn = (label: string, heartbeat?: boolean) => RunOptions;

function testServerDir(cacheDir: string): string {
  return path.join(cacheDir, `test-server-${TEMPORAL_TEST_SERVER_VERSION}-launcher${LAUNCHER_REVISION}`);
}

export function testServerPath(cacheDir: string): string {
  return path.join(testServerDir(cacheDir), 'temporal-test-server');
}

const timeSkippingTestServer: ServerKind<JavaTools> & { addressVariable?: undefined } = {
  label: 'time-skipping test server',
  title: `time-skipping test server ${TEMPORAL_TEST_SERVER_VERSION}`,
  missing: 'time-skipping test server',
  pathVariable: 'TEMPORAL_TEST_SERVER_PATH',
  lockName: 'test-server',
  entryDir: testServerDir,
  executablePath: testServerPath,
  isCached: async (cacheDir) => (await isExecutable(testServerPath(cacheDir))) && (await exists(path.join(testServerDir(cacheDir), 'manifest.json'))),

  async findTools(env) {
    const java = await findJava(env);
    const mvn = await which('mvn', env);
    if (java && mvn) return { java, mvn };
    const missing = [java ? undefined : 'java (a JDK, 17 or newer)', mvn ? undefined : 'mvn (Apache Maven)'].filter(Boolean).join(' and ');
    throw new TemporalServerUnavailableError(
      `Cannot provision the Temporal time-skipping test server: ${missing} not found (and no cached copy, ` +
        `TEMPORAL_TEST_SERVER_PATH, or reachable ${SDK_CDN}). Install them (e.g. apt-get install openjdk-17-jdk-headless maven), ` +
        'or set TEMPORAL_TEST_SERVER_PATH to a temporal-test-server executable.',
    );
  },

  build: buildTestServer,
};

export function resolveTimeSkippingServer(opts: ResolveOptions = {}): Promise<TimeSkippingServerResolution> {
  return resolveServer(timeSkippingTestServer, opts);
}

/**
 * Ensures the time-skipping test server is in the cache: jars from Maven Central, a small launcher that binds
 * 127.0.0.1 only (the stock main binds every interface), an AppCDS archive, and the wrapper script the SDK runs.
 * Idempotent; safe concurrently.
 */
export function provisionTimeSkippingServer(opts: ProvisionOptions = {}): Promise<ProvisionResult> {
  return provisionServer(timeSkippingTestServer, opts);
}

/** JAVA_HOME's java, else the one on PATH, resolved through symlinks so the wrapper keeps the JVM the archive fits. */
async function findJava(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const fromHome = env.JAVA_HOME ? path.join(env.JAVA_HOME, 'bin', 'java') : undefined;
  const java = fromHome && (await isExecutable(fromHome)) ? fromHome : await which('java', env);
  return java ? fs.realpath(java) : undefined;
}

async function buildTestServer({ tmp, logFile, tools: { java, mvn }, env, log }: BuildContext<JavaTools>): Promise<void> {
  log(`provisioning time-skipping test server ${TEMPORAL_TEST_SERVER_VERSION}: io.temporal:temporal-test-server from Maven Central`);
  const runIn: RunIn = (label, heartbeat = false) => ({ cwd: tmp, env, logFile, label, log: heartbeat ? log : undefined });
  const classPath = await fetchJars(mvn, tmp, runIn);
  const mainClass = (await compileLauncher(java, classPath, tmp, runIn)) ? LAUNCHER_CLASS : STOCK_MAIN_CLASS;
  if (mainClass === LAUNCHER_CLASS) classPath.push('launcher.jar');
  else log(`warning: no javac/jar next to ${java}; using the stock test server main, which listens on all interfaces, not only 127.0.0.1`);

  // Class-data sharing: run the server once, exercise it, and let the JVM dump the classes it loaded at exit.
  const baseArgs = [...JVM_FLAGS, ...CDS_QUIET, '-cp', classPath.join(path.delimiter), mainClass];
  const { withCds, withoutCds } = await trainCdsArchive(java, baseArgs, tmp, logFile);
  if (withCds === undefined) log('warning: could not create a class-data-sharing archive (needs JDK 13+); the test server starts without it');

  const javaArgs = [...(withCds === undefined ? [] : [`-XX:SharedArchiveFile=${CDS_ARCHIVE}`]), ...baseArgs];
  await fs.writeFile(path.join(tmp, 'temporal-test-server'), wrapperScript(java, javaArgs), { mode: 0o755 });
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

/** Fetches the test server and its runtime dependencies into lib/; returns their class path, relative to `tmp`. */
async function fetchJars(mvn: string, tmp: string, runIn: RunIn): Promise<string[]> {
  await fs.copyFile(POM_FILE, path.join(tmp, 'pom.xml'));
  const properties = [`-Dtemporal-test-server.version=${TEMPORAL_TEST_SERVER_VERSION}`, '-DoutputDirectory=lib', '-DincludeScope=runtime'];
  await run(mvn, ['-q', '-B', '-Dstyle.color=never', '-f', 'pom.xml', 'dependency:copy-dependencies', ...properties], runIn('mvn dependency:copy-dependencies', true));
  const jars = (await fs.readdir(path.join(tmp, 'lib'))).filter((f) => f.endsWith('.jar')).sort();
  if (!jars.some((j) => j.startsWith('temporal-test-server-'))) throw new Error(`mvn did not fetch temporal-test-server (see ${path.join(tmp, 'provision.log')})`);
  // Relative paths, explicit and sorted: the CDS archive records the class path, and the wrapper cd's into its own
  // directory, so the archive stays valid when the cache directory moves (e.g. a CI cache restored elsewhere).
  return jars.map((j) => `lib/${j}`);
}

/** Compiles the launcher sources (./LoopbackTestServer.java, ...) into launcher.jar; false if this JVM has no javac/jar. */
async function compileLauncher(java: string, classPath: string[], tmp: string, runIn: RunIn): Promise<boolean> {
  const jdkBin = path.dirname(java);
  const [javac, jar] = [path.join(jdkBin, 'javac'), path.join(jdkBin, 'jar')];
  if (!(await isExecutable(javac)) || !(await isExecutable(jar))) return false;
  await fs.mkdir(path.join(tmp, 'launcher', 'classes'), { recursive: true });
  for (const source of LAUNCHER_SOURCES) await fs.copyFile(path.join(__dirname, source), path.join(tmp, 'launcher', source));
  const sources = LAUNCHER_SOURCES.map((source) => `launcher/${source}`);
  await run(javac, ['-nowarn', '-d', 'launcher/classes', '-cp', classPath.join(path.delimiter), ...sources], runIn('javac'));
  // A jar, not a class directory: CDS refuses non-empty directories on the class path.
  await run(jar, ['cf', 'launcher.jar', '-C', 'launcher/classes', '.'], runIn('jar'));
  return true;
}

/** The executable the SDK runs as `temporal-test-server <port> [extra args]`. */
function wrapperScript(java: string, javaArgs: string[]): string {
  return `#!/bin/sh
# Temporal time-skipping test server ${TEMPORAL_TEST_SERVER_VERSION}, provisioned by meterloop (scripts/temporal/test-server.ts).
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
}
