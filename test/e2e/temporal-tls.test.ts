/**
 * The path to a secured Temporal cluster, run here: a dev server behind a TLS terminator (test/support/tls-terminator.ts)
 * with certificates made in the test by openssl, and every connection built by config/temporal-connection.ts.
 *   - mTLS from TEMPORAL_* variables alone: the real worker process (worker/main.ts, prebuilt bundle) and a client
 *     run the janitor workflow (workflow + activities + Postgres) through the terminator;
 *   - the same from a TOML profile (TEMPORAL_CONFIG_FILE + TEMPORAL_PROFILE), worker and client in this process;
 *   - an API key turns TLS on by itself (the Temporal Cloud shape; Cloud itself cannot be reached from here);
 *   - a client that trusts another CA, one without a client certificate, and one without TLS are refused, each with
 *     an error that names the cause.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { temporalConnectionFromEnv } from '../../config/temporal-connection';
import { connectOrExplain } from '../../config/temporal-connect-diagnosis';
import { JANITOR_WORKFLOW_TYPE, type ReconciliationReport } from '../../contract/janitor';
import { RunningDevServer, startDevServer } from '../../scripts/temporal-servers';
import type { Database } from '../../store/database';
import { createBillingWorker } from '../../worker/create-worker';
import { WORKER_NODE_ARGS } from '../../worker/launch';
import { buildWorkflowBundle } from '../../worker/workflow-bundle';
import { SEARCH_ATTRIBUTE_REGISTRATIONS, TASK_QUEUE } from '../../workflows/definitions';
import { createTestDatabaseWithUrl } from '../support/database';
import { createTestPki, TestPki } from '../support/test-certificates';
import { startTlsTerminator, TlsTerminator } from '../support/tls-terminator';

let pki: TestPki;
let db: Database;
let databaseUrl: string;
let devServer: RunningDevServer;
let mtls: TlsTerminator;
let serverTlsOnly: TlsTerminator;
let bundlePath: string;
let worker: ChildProcess | undefined;
let workerOutput = '';

beforeAll(async () => {
  pki = createTestPki();
  let created: { db: Database; url: string };
  [created, devServer] = await Promise.all([createTestDatabaseWithUrl(), startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_REGISTRATIONS, log: () => undefined })]);
  ({ db, url: databaseUrl } = created);
  mtls = await startTlsTerminator(pki, devServer.address, { requireClientCert: true });
  serverTlsOnly = await startTlsTerminator(pki, devServer.address, { requireClientCert: false });
  bundlePath = path.join(pki.dir, 'workflow-bundle.js');
  const quiet = (): void => undefined;
  fs.writeFileSync(bundlePath, (await buildWorkflowBundle({ logger: { trace: quiet, debug: quiet, info: quiet, warn: quiet, error: console.error, log: quiet } })).code);
}, 180_000);

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const exited = new Promise((resolve) => worker!.once('exit', resolve));
    worker.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    worker.kill('SIGKILL');
  }
  await mtls?.close();
  await serverTlsOnly?.close();
  await devServer?.stop();
  await db?.destroy();
  if (pki) fs.rmSync(pki.dir, { recursive: true, force: true });
}, 60_000);

/** Only what a deployment would set: no inherited TEMPORAL_*, and a HOME without a temporal.toml. */
function deploymentEnv(temporal: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? '', HOME: pki.dir, ...temporal };
}

function mtlsVariables(): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: mtls.address,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_TLS: 'true',
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
    TEMPORAL_TLS_SERVER_NAME: pki.serverName,
    TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
    TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
  };
}

async function connectClient(env: Record<string, string>): Promise<Client> {
  const settings = temporalConnectionFromEnv({ env });
  const connection = await Connection.connect({ ...settings.connectionOptions, connectTimeout: 5_000 });
  return new Client({ connection, namespace: settings.namespace });
}

async function runJanitor(client: Client, taskQueue: string): Promise<ReconciliationReport> {
  return client.workflow.execute(JANITOR_WORKFLOW_TYPE, { taskQueue, workflowId: `tls-janitor-${randomUUID()}`, args: [{}], workflowExecutionTimeout: '60s' });
}

test('worker process and client configured only by TEMPORAL_* variables run a workflow over mTLS', async () => {
  const env = deploymentEnv(mtlsVariables());
  expect(temporalConnectionFromEnv({ env }).summary).toEqual({ address: mtls.address, namespace: 'default', tls: 'mtls', apiKey: false, profile: undefined });

  // The real worker entry point, as the image runs it (with tsx here), configured by the environment alone.
  worker = spawn(process.execPath, [...WORKER_NODE_ARGS, '--import', 'tsx', path.join(__dirname, '../../worker/main.ts')], {
    env: { ...env, DATABASE_URL: databaseUrl, WORKFLOW_BUNDLE_PATH: bundlePath, WORKER_METRICS_ADDRESS: 'off', METERLOOP_OUTBOX_DISPATCHER: 'off', JANITOR_SCHEDULE: 'off' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  worker.stdout!.on('data', (chunk: Buffer) => (workerOutput += chunk.toString()));
  worker.stderr!.on('data', (chunk: Buffer) => (workerOutput += chunk.toString()));

  const client = await connectClient(env);
  try {
    const report = await runJanitor(client, TASK_QUEUE);
    expect(report).toMatchObject({ scanned: { unknownPayments: 0, uncollectedInvoices: 0 } });
  } catch (error) {
    throw new Error(`${String(error)}\nworker output:\n${workerOutput}`, { cause: error });
  } finally {
    await client.connection.close();
  }
  // Both processes went through the terminator with the test client certificate.
  expect(mtls.handshakes.filter((cn) => cn === 'meterloop-worker').length).toBeGreaterThanOrEqual(2);
  const connecting = workerOutput.split('\n').find((line) => line.includes('connecting to Temporal'));
  expect(JSON.parse(connecting!)).toMatchObject({ temporal: { address: mtls.address, tls: 'mtls' }, workflowBundle: bundlePath });
});

test('a TOML profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE) configures worker and client the same way', async () => {
  const configFile = path.join(pki.dir, 'temporal.toml');
  // The CA inline, the client pair by path; no server name: the certificate also names 127.0.0.1.
  fs.writeFileSync(
    configFile,
    [
      '[profile.default]',
      'address = "127.0.0.1:1"',
      '',
      '[profile.cluster]',
      `address = "${mtls.address}"`,
      'namespace = "default"',
      '',
      '[profile.cluster.tls]',
      `server_ca_cert_data = """\n${fs.readFileSync(pki.caCert, 'utf8')}"""`,
      `client_cert_path = "${pki.clientCert}"`,
      `client_key_path = "${pki.clientKey}"`,
      '',
    ].join('\n'),
  );
  const env = deploymentEnv({ TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'cluster' });
  const settings = temporalConnectionFromEnv({ env });
  expect(settings.summary).toEqual({ address: mtls.address, namespace: 'default', tls: 'mtls', apiKey: false, profile: 'cluster' });

  const taskQueue = `billing-profile-${randomUUID().slice(0, 8)}`;
  const connection = await NativeConnection.connect(settings.connectionOptions);
  const client = await connectClient(env);
  try {
    const profileWorker = await createBillingWorker({ connection, db, namespace: settings.namespace, taskQueue, workflowBundle: { codePath: bundlePath } });
    const report = await profileWorker.runUntil(runJanitor(client, taskQueue));
    expect(report.scanned).toEqual({ unknownPayments: 0, uncollectedInvoices: 0, owedReversalCredits: 0, flagged: 0 });
  } finally {
    await client.connection.close();
    await connection.close();
  }
});

test('an API key alone turns TLS on (the Temporal Cloud shape) and is carried on the connection', async () => {
  const env = deploymentEnv({
    TEMPORAL_ADDRESS: serverTlsOnly.address,
    TEMPORAL_API_KEY: 'test-api-key',
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
    TEMPORAL_TLS_SERVER_NAME: pki.serverName,
  });
  const settings = temporalConnectionFromEnv({ env });
  expect(settings.summary).toMatchObject({ tls: 'tls', apiKey: true });
  expect(settings.connectionOptions.apiKey).toBe('test-api-key');
  const client = await connectClient(env);
  const native = await NativeConnection.connect(settings.connectionOptions);
  try {
    // The dev server ignores the key; what this shows is that both connection kinds accept the API-key options over TLS.
    await expect(client.workflowService.getSystemInfo({})).resolves.toBeDefined();
    await expect(native.workflowService.getSystemInfo({})).resolves.toBeDefined();
  } finally {
    await client.connection.close();
    await native.close();
  }
  expect(serverTlsOnly.handshakes.length).toBeGreaterThanOrEqual(2);
});

describe('refused, with an error that names the cause', () => {
  /** Both connection kinds through connectOrExplain, as worker/main.ts and api/main.ts connect; the error messages. */
  const refusals = async (env: Record<string, string>): Promise<{ client: string; worker: string }> => {
    const settings = temporalConnectionFromEnv({ env });
    const client = await connectOrExplain(settings, async (options) => {
      // lazy + close: a failed Connection.connect leaves its channel open (and this test process running).
      const connection = Connection.lazy({ ...options, connectTimeout: 3_000 });
      await connection.ensureConnected().catch(async (error: unknown) => {
        await connection.close();
        throw error;
      });
      return connection;
    }).then(
      async (c) => {
        await c.close();
        return 'connected';
      },
      (error: unknown) => String(error),
    );
    const worker = await connectOrExplain(settings, (options) => NativeConnection.connect(options)).then(
      async (c) => {
        await c.close();
        return 'connected';
      },
      (error: unknown) => String(error),
    );
    if (process.env.SHOW_REFUSALS) console.log(`${client}\n${worker}`);
    return { client, worker };
  };

  test('a server certificate from a CA the client does not trust', async () => {
    const { client, worker } = await refusals(deploymentEnv({ ...mtlsVariables(), TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.otherCaCert }));
    for (const message of [client, worker]) {
      expect(message).toMatch(/^TemporalConnectError: cannot connect to Temporal at 127\.0\.0\.1:\d+ \(namespace default, TLS mtls\): TLS handshake failed: /);
      expect(message).toContain('not signed by a CA trusted here: TEMPORAL_TLS_SERVER_CA_CERT_PATH');
    }
  });

  test('no client certificate where the server requires one', async () => {
    const before = mtls.refusals.length;
    const variables: Record<string, string> = { ...mtlsVariables() };
    delete variables.TEMPORAL_TLS_CLIENT_CERT_PATH;
    delete variables.TEMPORAL_TLS_CLIENT_KEY_PATH;
    const { client, worker } = await refusals(deploymentEnv(variables));
    for (const message of [client, worker]) {
      expect(message).toMatch(/TLS tls\): TLS handshake failed: .*certificate required/);
      expect(message).toContain('wants a client certificate it trusts: TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH');
    }
    expect(mtls.refusals.slice(before).join('\n')).toMatch(/certificate/i);
  });

  test('a wrong server name', async () => {
    const { client, worker } = await refusals(deploymentEnv({ ...mtlsVariables(), TEMPORAL_TLS_SERVER_NAME: 'elsewhere.test' }));
    for (const message of [client, worker]) expect(message).toContain('TEMPORAL_TLS_SERVER_NAME sets the name to check');
  });

  test('plain gRPC to a TLS port', async () => {
    const { client, worker } = await refusals(deploymentEnv({ TEMPORAL_ADDRESS: mtls.address, TEMPORAL_TLS: 'false' }));
    for (const message of [client, worker]) expect(message).toContain('the server answers with TLS but TLS is off here: set TEMPORAL_TLS=true');
  });
});
