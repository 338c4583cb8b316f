/**
 * Runs the dev server (the Temporal CLI's `server start-dev`) for `npm start`, e2e tests and the billing bench: a
 * child process on 127.0.0.1 that is ready once the namespace and search attributes answer, and never outlives us.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { freePort } from '../../store/free-port';
import { type DevServerResolution, resolveDevServer } from './cli';
import { defaultLog } from './errors';
import { waitForGrpc } from './grpc-ready';
import type { ServerSource } from './ladder';
import type { SearchAttributeTypeName } from './search-attributes';

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
  /**
   * Extra dynamic config for this server only, as `key=value` (e.g. `limit.historyCount.suggestContinueAsNew=10`, so
   * a test sees the continue-as-new suggestion that a default server gives only past thousands of events); default none.
   */
  dynamicConfigValues?: readonly string[];
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

/** The CLI's flags for dynamic config values given as `key=value`. */
function dynamicConfigArgs(values: readonly string[]): string[] {
  return values.flatMap((value) => ['--dynamic-config-value', value]);
}

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
        extraArgs: dynamicConfigArgs(opts.dynamicConfigValues ?? []),
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
    ...dynamicConfigArgs(['frontend.enableUpdateWorkflowExecution=true', 'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true', ...(opts.dynamicConfigValues ?? [])]),
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
