/**
 * How the environment becomes a Temporal connection and worker capacity (config/). No files here: with no HOME and
 * no TEMPORAL_CONFIG_FILE, envconfig reads no TOML (test/e2e/temporal-tls.test.ts covers profiles and real TLS).
 */
import { TemporalConfigError, temporalConnectionFromEnv } from '../../config/temporal-connection';
import { billingTaskQueue, databasePoolMax, workerTuningFromEnv, workflowStackTraces } from '../../config/tuning';

const PEM = (label: string): string => `-----BEGIN ${label}-----\nMIIB\n-----END ${label}-----\n`;

describe('temporalConnectionFromEnv', () => {
  test('nothing set: plain gRPC to 127.0.0.1:7233, namespace default (what npm start and npm run worker always used)', () => {
    const settings = temporalConnectionFromEnv({ env: {} });
    expect(settings.connectionOptions).toEqual({ address: '127.0.0.1:7233' });
    expect(settings.namespace).toBe('default');
    expect(settings.summary).toEqual({ address: '127.0.0.1:7233', namespace: 'default', tls: 'off', apiKey: false, profile: undefined });
  });

  test('address and namespace', () => {
    const settings = temporalConnectionFromEnv({ env: { TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_NAMESPACE: 'billing-prod' } });
    expect(settings.connectionOptions).toEqual({ address: 'temporal:7233' });
    expect(settings.namespace).toBe('billing-prod');
  });

  test('an API key turns TLS on with the system CAs (Temporal Cloud)', () => {
    const settings = temporalConnectionFromEnv({ env: { TEMPORAL_ADDRESS: 'eu-west-1.aws.api.temporal.io:7233', TEMPORAL_NAMESPACE: 'acme.a1b2c', TEMPORAL_API_KEY: 'secret' } });
    expect(settings.connectionOptions).toEqual({ address: 'eu-west-1.aws.api.temporal.io:7233', apiKey: 'secret', tls: true });
    expect(settings.summary).toMatchObject({ tls: 'tls', apiKey: true });
    expect(JSON.stringify(settings.summary)).not.toContain('secret');
  });

  test('TEMPORAL_TLS=true verifies the server with the system CAs; a server CA and name can be given', () => {
    expect(temporalConnectionFromEnv({ env: { TEMPORAL_TLS: 'true' } }).summary.tls).toBe('tls');
    const settings = temporalConnectionFromEnv({ env: { TEMPORAL_TLS_SERVER_CA_CERT_DATA: PEM('CERTIFICATE'), TEMPORAL_TLS_SERVER_NAME: 'temporal.internal' } });
    expect(settings.connectionOptions.tls).toMatchObject({ serverNameOverride: 'temporal.internal', serverRootCACertificate: Buffer.from(PEM('CERTIFICATE')) });
  });

  test('a client certificate and key make it mTLS', () => {
    const settings = temporalConnectionFromEnv({ env: { TEMPORAL_TLS_CLIENT_CERT_DATA: PEM('CERTIFICATE'), TEMPORAL_TLS_CLIENT_KEY_DATA: PEM('PRIVATE KEY') } });
    expect(settings.connectionOptions.tls).toMatchObject({ clientCertPair: { crt: Buffer.from(PEM('CERTIFICATE')), key: Buffer.from(PEM('PRIVATE KEY')) } });
    expect(settings.summary.tls).toBe('mtls');
  });

  test('TEMPORAL_TLS=false wins over TLS files', () => {
    expect(temporalConnectionFromEnv({ env: { TEMPORAL_TLS: 'false', TEMPORAL_TLS_SERVER_CA_CERT_DATA: PEM('CERTIFICATE') } }).connectionOptions.tls).toBe(false);
  });

  test('gRPC metadata from TEMPORAL_GRPC_META_*', () => {
    expect(temporalConnectionFromEnv({ env: { TEMPORAL_GRPC_META_X_TENANT: 'acme' } }).connectionOptions.metadata).toEqual({ 'x-tenant': 'acme' });
  });

  test.each([
    ['a certificate without its key', { TEMPORAL_TLS_CLIENT_CERT_DATA: PEM('CERTIFICATE') }, /needs its key/],
    ['a key without its certificate', { TEMPORAL_TLS_CLIENT_KEY_DATA: PEM('PRIVATE KEY') }, /needs its key and a key its certificate/],
    ['a profile that no file defines', { TEMPORAL_PROFILE: 'cloud' }, /Profile 'cloud' not found/],
    ['a config file that does not exist', { TEMPORAL_CONFIG_FILE: '/nonexistent/meterloop/temporal.toml' }, /TEMPORAL_CONFIG_FILE names \/nonexistent/],
    ['host verification turned off (the SDK cannot)', { TEMPORAL_TLS: 'true', TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'true' }, /not supported: set TEMPORAL_TLS_SERVER_NAME/],
    ['a CA file that cannot be read', { TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/nonexistent/ca.pem' }, /cannot load a TLS file .*ENOENT/],
  ])('refused at start: %s', (_what, env, message) => {
    expect(() => temporalConnectionFromEnv({ env })).toThrow(TemporalConfigError);
    expect(() => temporalConnectionFromEnv({ env })).toThrow(message);
  });
});

describe('tuning', () => {
  test('nothing set: the SDK defaults, pool 10, task queue billing', () => {
    expect(workerTuningFromEnv({})).toEqual({});
    expect(databasePoolMax({})).toBe(10);
    expect(billingTaskQueue({})).toBe('billing');
  });

  test('slots, cache, pollers, pool and task queue from the environment', () => {
    const env = {
      WORKER_MAX_CACHED_WORKFLOWS: '2000',
      WORKER_WORKFLOW_TASK_SLOTS: '80',
      WORKER_ACTIVITY_TASK_SLOTS: '200',
      WORKER_LOCAL_ACTIVITY_SLOTS: '30',
      WORKER_WORKFLOW_TASK_POLLERS: '20',
      WORKER_ACTIVITY_TASK_POLLERS: '10',
      WORKER_STICKY_QUEUE_TIMEOUT_S: '30',
      DATABASE_POOL_MAX: '25',
      METERLOOP_TASK_QUEUE: 'billing-eu',
    };
    expect(workerTuningFromEnv(env)).toEqual({
      maxCachedWorkflows: 2000,
      maxConcurrentWorkflowTaskExecutions: 80,
      maxConcurrentActivityTaskExecutions: 200,
      maxConcurrentLocalActivityExecutions: 30,
      maxConcurrentWorkflowTaskPolls: 20,
      maxConcurrentActivityTaskPolls: 10,
      stickyQueueScheduleToStartTimeout: 30_000,
    });
    expect(databasePoolMax(env)).toBe(25);
    expect(billingTaskQueue(env)).toBe('billing-eu');
  });

  test('a cache of 0 turns sticky execution off (allowed); a resource-based tuner replaces fixed slots', () => {
    expect(workerTuningFromEnv({ WORKER_MAX_CACHED_WORKFLOWS: '0' })).toEqual({ maxCachedWorkflows: 0 });
    expect(workerTuningFromEnv({ WORKER_TUNER_TARGET_MEMORY: '0.8', WORKER_TUNER_TARGET_CPU: '0.9' })).toEqual({ tuner: { tunerOptions: { targetMemoryUsage: 0.8, targetCpuUsage: 0.9 } } });
  });

  test.each([
    [{ WORKER_WORKFLOW_TASK_SLOTS: 'many' }, /WORKER_WORKFLOW_TASK_SLOTS must be an integer of at least 1, got "many"/],
    [{ WORKER_ACTIVITY_TASK_SLOTS: '0' }, /WORKER_ACTIVITY_TASK_SLOTS must be an integer of at least 1/],
    [{ WORKER_MAX_CACHED_WORKFLOWS: '-1' }, /WORKER_MAX_CACHED_WORKFLOWS must be an integer of at least 0/],
    [{ WORKER_STICKY_QUEUE_TIMEOUT_S: '0' }, /WORKER_STICKY_QUEUE_TIMEOUT_S must be an integer of at least 1/],
    [{ WORKER_TUNER_TARGET_MEMORY: '80' }, /WORKER_TUNER_TARGET_MEMORY must be a fraction/],
    [{ WORKER_TUNER_TARGET_MEMORY: '0.8' }, /needs both WORKER_TUNER_TARGET_MEMORY and WORKER_TUNER_TARGET_CPU/],
    [{ WORKER_TUNER_TARGET_MEMORY: '0.8', WORKER_TUNER_TARGET_CPU: '0.8', WORKER_WORKFLOW_TASK_SLOTS: '10' }, /exclude each other/],
    [{ WORKER_TUNER_TARGET_MEMORY: '0.8', WORKER_TUNER_TARGET_CPU: '0.8', WORKER_LOCAL_ACTIVITY_SLOTS: '10' }, /exclude each other/],
  ])('refused at start: %j', (env, message) => {
    expect(() => workerTuningFromEnv(env)).toThrow(message);
  });

  test('a pool size that cannot be right is refused', () => {
    expect(() => databasePoolMax({ DATABASE_POOL_MAX: '2.5' })).toThrow(/DATABASE_POOL_MAX must be an integer of at least 1/);
  });
});

describe('workflowStackTraces', () => {
  test('off under the preload unless WORKFLOW_STACK_TRACES=on; without the preload the SDK default, named as such', () => {
    expect(workflowStackTraces({}, true)).toBe('off');
    expect(workflowStackTraces({ WORKFLOW_STACK_TRACES: 'off' }, true)).toBe('off');
    expect(workflowStackTraces({ WORKFLOW_STACK_TRACES: 'on' }, true)).toBe('on');
    expect(workflowStackTraces({}, false)).toMatch(/^on \(SDK default: the worker was launched without worker\/workflow-thread-preload.cjs\)$/);
  });

  test('any other value is refused at start, so a typo never leaves them silently off', () => {
    expect(() => workflowStackTraces({ WORKFLOW_STACK_TRACES: 'true' }, true)).toThrow(/WORKFLOW_STACK_TRACES must be "on" or "off", got "true"/);
  });
});
