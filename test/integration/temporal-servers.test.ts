/**
 * The Temporal servers tests and `npm start` run against (scripts/temporal-servers.ts, scripts/temporal/): found or provisioned
 * once, then reused from the cache; listening on 127.0.0.1 only; gone once stopped.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  cachedServerPaths,
  provisionTimeSkippingServer,
  resolveDevServer,
  resolveTimeSkippingServer,
  startDevServer,
  type SearchAttributeTypeName,
} from '../../scripts/temporal-servers';
import { tcpOpen } from '../../scripts/temporal/grpc-ready';
import { freePort } from '../../store/free-port';
import { SEARCH_ATTRIBUTE_REGISTRATIONS } from '../../workflows/definitions';

// The billing search attributes, as the dev server registers them for `npm start`.
const SEARCH_ATTRIBUTES: Record<string, SearchAttributeTypeName> = SEARCH_ATTRIBUTE_REGISTRATIONS;

const IndexedValueType = temporal.api.enums.v1.IndexedValueType;
const INDEXED_VALUE_TYPE: Record<SearchAttributeTypeName, number> = {
  Keyword: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  Text: IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
  Int: IndexedValueType.INDEXED_VALUE_TYPE_INT,
  Double: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
  Bool: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
  Datetime: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
  KeywordList: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
};

// Progress lines are kept out of the test output; failures carry their own details.
const logLines: string[] = [];
const log = (line: string): void => {
  logLines.push(line);
};

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The wrapper can be exercised if it is cached, or if it can be provisioned here. */
const canUseWrapper = fs.existsSync(cachedServerPaths().testServer) || (hasCommand('java') && hasCommand('mvn'));
/** The JVM checks read /proc, so the wrapper test runs on Linux (as CI does). */
const testWithWrapperOnLinux = canUseWrapper && process.platform === 'linux' ? test : test.skip;
const testWithJavaTools = hasCommand('java') && hasCommand('mvn') ? test : test.skip;
/** Without `npm run provision` first, resolving may build the CLI with go install, which takes minutes. */
const MAY_PROVISION_MS = 15 * 60_000;


/** This machine's non-loopback IPv4 addresses: a server bound to 127.0.0.1 must not answer on them. */
function externalAddresses(): string[] {
  return Object.values(os.networkInterfaces())
    .flat()
    .filter((i): i is os.NetworkInterfaceInfo => !!i && i.family === 'IPv4' && !i.internal)
    .map((i) => i.address);
}

/** Linux: the process whose command line ends in `<port>` and mentions the given text (e.g. the test server's main). */
function findProcess(text: string, port: number): { pid: number; ppid: number; comm: string } | undefined {
  if (process.platform !== 'linux') return undefined;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (args.at(-1) !== String(port) || !args.some((a) => a.includes(text))) continue;
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      return { pid: Number(entry), ppid, comm: fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim() };
    } catch {
      // the process went away while we looked
    }
  }
  return undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('resolving twice is idempotent: the second time finds the cache and provisions nothing', async () => {
  const resolvers = [() => resolveTimeSkippingServer({ log }), () => resolveDevServer({ log })];
  for (const resolve of resolvers) {
    const first = await resolve();
    const started = performance.now();
    const second = await resolve();
    const elapsed = performance.now() - started;
    // Whatever the first call did (found, provisioned, or left to the SDK), the second reuses it.
    expect(second).toEqual(first.kind === 'executable' && first.source === 'provisioned' ? { ...first, source: 'cache' } : first);
    // Every second answer is local (the CDN probe is made once per process), so it is fast whatever the kind.
    expect(elapsed).toBeLessThan(1000);
  }
}, MAY_PROVISION_MS);

testWithJavaTools('provisioning is safe when two run at once, and a no-op once cached', async () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meterloop-cache-'));
  try {
    const [a, b] = await Promise.all([provisionTimeSkippingServer({ cacheDir, log }), provisionTimeSkippingServer({ cacheDir, log })]);
    expect(a.path).toBe(b.path);
    expect([a.provisioned, b.provisioned].sort()).toEqual([false, true]);

    const again = await provisionTimeSkippingServer({ cacheDir, log });
    expect(again).toMatchObject({ path: a.path, provisioned: false });
    expect(again.durationMs).toBeLessThan(1000);
    // Only the finished entry is left: no temp dirs, no lock.
    expect(fs.readdirSync(cacheDir)).toEqual([path.basename(path.dirname(a.path))]);

    const env = { ...process.env, TEMPORAL_TEST_SERVER_PATH: '' };
    await expect(resolveTimeSkippingServer({ cacheDir, env, log })).resolves.toEqual({
      kind: 'executable',
      executable: { type: 'existing-path', path: a.path },
      source: 'cache',
    });
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
}, 180_000);

testWithWrapperOnLinux('the wrapper-started time-skipping server skips time, listens on 127.0.0.1 only, and its JVM exits at teardown', async () => {
  const { path: wrapper } = await provisionTimeSkippingServer({ log });
  const port = await freePort();
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: wrapper }, port } });
  let jvm: ReturnType<typeof findProcess>;
  try {
    jvm = findProcess('TestServer', port);
    // The wrapper exec'd java: the JVM itself is the SDK's child, so the SDK's kill reaches it.
    expect(jvm).toMatchObject({ comm: 'java', ppid: process.pid });

    const before = await env.currentTimeMs();
    const started = performance.now();
    await env.sleep('1 day');
    expect(performance.now() - started).toBeLessThan(10_000);
    expect((await env.currentTimeMs()) - before).toBeGreaterThanOrEqual(24 * 3600_000);

    for (const ip of externalAddresses()) expect(await tcpOpen(ip, port)).toBe(false);
  } finally {
    await env.teardown();
  }
  expect(await tcpOpen('127.0.0.1', port)).toBe(false);
  expect(jvm).toBeDefined();
  expect(isAlive(jvm!.pid)).toBe(false);
});

test('the dev server starts on free 127.0.0.1 ports with the billing search attributes registered, and stops', async () => {
  const resolution = await resolveDevServer({ log });
  if (resolution.kind === 'address') {
    // TEMPORAL_ADDRESS: nothing is started, and stopping is a no-op.
    const server = await startDevServer({ searchAttributes: SEARCH_ATTRIBUTES, resolution, log });
    expect(server.address).toBe(resolution.address);
    await server.stop();
    return;
  }
  const [port, uiPort] = [await freePort(), await freePort()];
  const server = await startDevServer({ port, uiPort, searchAttributes: SEARCH_ATTRIBUTES, resolution, log });
  try {
    expect(server.address).toBe(`127.0.0.1:${port}`);
    const connection = await Connection.connect({ address: server.address });
    try {
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      const registered = Object.fromEntries(Object.keys(SEARCH_ATTRIBUTES).map((name) => [name, customAttributes?.[name]]));
      expect(registered).toEqual(Object.fromEntries(Object.entries(SEARCH_ATTRIBUTES).map(([name, type]) => [name, INDEXED_VALUE_TYPE[type]])));
    } finally {
      await connection.close();
    }
    expect(server.uiUrl).toBe(`http://127.0.0.1:${uiPort}`);
    expect((await fetch(server.uiUrl!)).status).toBe(200);
    for (const ip of externalAddresses()) {
      expect(await tcpOpen(ip, port)).toBe(false);
      expect(await tcpOpen(ip, uiPort)).toBe(false);
    }
  } finally {
    await server.stop();
  }
  expect(await tcpOpen('127.0.0.1', port)).toBe(false);
  expect(await tcpOpen('127.0.0.1', uiPort)).toBe(false);
}, MAY_PROVISION_MS);
