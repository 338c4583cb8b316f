/**
 * What ops get from the API: a JSON log line per request (pino), /metrics, /healthz and /readyz, and a shutdown that lets
 * in-flight requests finish. (With a live Temporal server /readyz answers 200: see test/e2e/billing-stack.test.ts.)
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from '../../api/app';
import { createLogger, logLevelFromEnv } from '../../logging/logger';
import { closeGracefully } from '../../api/shutdown';
import { createDatabase, Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';
import { Client, Connection } from '@temporalio/client';

let db: Database;
let api: ApiOnly;
let admin: TestApiKey;
let monitoring: TestApiKey;

beforeAll(async () => {
  db = await createTestDatabase();
  admin = await createTestApiKey(db, 'admin');
  monitoring = await createTestApiKey(db, 'monitoring');
  api = await serveApiOnly(db, { headers: admin.headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test('one JSON log line per request: method, route template, status, duration, request id, API key id', async () => {
  const id = randomUUID();
  const answer = await api.http.call('GET', `/v1/customers/${id}`, undefined, { 'x-request-id': 'req-abc.123' });
  expect(answer.status).toBe(404);
  expect(answer.headers.get('x-request-id')).toBe('req-abc.123');
  const generated = await api.http.call('GET', '/v1/plans', undefined, { 'x-request-id': 'bad id with spaces' });
  expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  await api.http.call('GET', '/v1/plans', undefined, { authorization: '' });

  const lines = api.logs.slice(-3);
  expect(lines[0]).toEqual({
    level: 'info',
    time: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
    name: 'api',
    pid: process.pid,
    hostname: expect.any(String),
    msg: 'request',
    method: 'GET',
    path: '/v1/customers/:id', // the template: ids never reach logs or metric labels
    status: 404,
    duration_ms: expect.any(Number),
    request_id: 'req-abc.123',
    api_key_id: admin.id,
  });
  expect(lines[1]).toMatchObject({ path: '/v1/plans', status: 200, request_id: generated.headers.get('x-request-id') });
  expect(lines[2]).toMatchObject({ path: '/v1/plans', status: 401, api_key_id: null });
  expect(JSON.stringify(api.logs)).not.toContain(id);
  expect(JSON.stringify(api.logs)).not.toContain(admin.headers.authorization); // headers never reach the log
});

test('a caller that hangs up before the answer is logged once, marked aborted', async () => {
  const before = api.logs.length;
  const url = new URL('/v1/events', api.http.baseUrl);
  await new Promise<void>((resolve) => {
    const request = http.request(url, { method: 'POST', headers: { ...admin.headers, 'content-type': 'application/json', 'content-length': '1000', 'x-request-id': 'hang-up' } });
    request.on('error', () => resolve());
    request.write('{"events": [');
    // The body never completes: once the API is waiting for the rest of it, the caller goes away.
    setTimeout(() => request.destroy(), 200);
  });
  for (let waited = 0; api.logs.length === before && waited < 2_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
  // The body parser answers the cut-off body with a 400 nobody receives (a 499 is logged only when no answer began).
  expect(api.logs.slice(before)).toEqual([expect.objectContaining({ level: 'info', msg: 'request', path: '/v1/events', status: 400, aborted: true, request_id: 'hang-up' })]);
});

test('METERLOOP_LOG picks the level: "errors" keeps error lines only, "all" or unset everything from info up', () => {
  expect([logLevelFromEnv('errors'), logLevelFromEnv('all'), logLevelFromEnv(undefined), logLevelFromEnv('debug'), logLevelFromEnv('nonsense')]).toEqual([
    'error',
    'info',
    'info',
    'debug',
    'info',
  ]);
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('worker', { level: logLevelFromEnv('errors'), destination: (entry) => lines.push(entry) });
  logger.info('not written');
  logger.error({ invoice: 'INV-1' }, 'written');
  expect(lines).toEqual([expect.objectContaining({ level: 'error', name: 'worker', msg: 'written', invoice: 'INV-1' })]);
});

test('an unexpected error is a 500 problem to the caller and an error line with its stack in the log', async () => {
  const url = new URL(process.env.TEST_POSTGRES_URL!);
  url.pathname = '/no_such_database';
  const broken = createDatabase(url.toString());
  const logs: Record<string, unknown>[] = [];
  const app = createApp({ db: broken, temporal: new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) }), log: (entry) => logs.push(entry) });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const original = console.error;
  console.error = () => undefined; // problemHandler's own line; the request line below is what we check
  try {
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/plans`, { headers: admin.headers });
    expect(response.status).toBe(500);
    expect(await response.json()).toMatchObject({ code: 'internal_error' });
    expect(logs).toEqual([expect.objectContaining({ level: 'error', status: 500, error: { message: expect.stringContaining('no_such_database'), stack: expect.stringContaining('\n    at ') } })]);
  } finally {
    console.error = original;
    await closeGracefully(server);
    await broken.destroy();
  }
});

test('/healthz is alive; /readyz is 503 with the failing check when Temporal or Postgres is down, or when draining', async () => {
  expect((await api.http.call('GET', '/healthz', undefined, { authorization: '' })).json).toEqual({ status: 'ok' });
  const ready = await api.http.call('GET', '/readyz', undefined, { authorization: '' });
  expect(ready.status).toBe(503); // this app's Temporal client points at nothing
  expect(ready.type).toContain('application/problem+json');
  expect(ready.json).toMatchObject({ code: 'not_ready', checks: { postgres: { ok: true }, temporal: { ok: false, error: expect.any(String) } } });

  let draining = false;
  const drainable = await serveApiOnly(db, { draining: () => draining });
  try {
    draining = true;
    expect((await drainable.http.call('GET', '/readyz')).json.checks).toMatchObject({ shutdown: { ok: false } });
  } finally {
    await drainable.close();
  }
});

test('/metrics needs a monitoring (or admin) key and exposes latency by route, ingestion counters and business state', async () => {
  const customer = await insertCustomer(db, { external_id: 'metrics-co' });
  await api.http.call('POST', '/v1/metrics', { code: 'm_calls', name: 'Calls', event_type: 'm.call', aggregation: 'count' });
  const sentAt = new Date(Date.now() - 1000).toISOString(); // one instant: the resend of `a` below is the same event
  const event = (id: string) => ({ id, customer: customer.external_id, type: 'm.call', timestamp: sentAt, properties: {} });
  await api.http.call('POST', '/v1/events', { events: [event('a'), event('b'), { ...event('c'), customer: 'nobody' }] });
  await api.http.call('POST', '/v1/events', { events: [event('a')] });
  await db('invoices').insert({ customer_id: customer.id, kind: 'period', status: 'open', currency: 'USD', period_start: new Date(), period_end: new Date() });

  expect((await api.http.call('GET', '/metrics', undefined, { authorization: '' })).status).toBe(401);
  const finance = await createTestApiKey(db, 'finance');
  expect((await api.http.call('GET', '/metrics', undefined, finance.headers)).status).toBe(403);
  const scrape = await api.http.call('GET', '/metrics', undefined, monitoring.headers);
  expect(scrape.status).toBe(200);
  expect(scrape.text).toMatch(/^meterloop_usage_events_ingested_total 2$/m);
  expect(scrape.text).toMatch(/^meterloop_usage_events_deduplicated_total 1$/m);
  expect(scrape.text).toMatch(/^meterloop_usage_events_rejected_total 1$/m);
  expect(scrape.text).toMatch(/^meterloop_invoices\{kind="period",status="open"\} 1$/m);
  expect(scrape.text).toMatch(/^meterloop_metrics_database_up 1$/m);
  expect(scrape.text).toMatch(/^meterloop_http_request_duration_seconds_bucket\{le="0.1",method="POST",route="\/v1\/events",status="200"\} \d+$/m);
  expect(scrape.text).toMatch(/^meterloop_http_request_duration_seconds_count\{method="GET",route="\/v1\/customers\/:id",status="404"\} 1$/m);
  expect(scrape.text).toContain('process_cpu_user_seconds_total');
});

test('graceful shutdown: a request in flight when the server closes still gets its answer; new connections are refused', async () => {
  const server = http.createServer((_req, res) => {
    setTimeout(() => res.end('finished'), 300);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  let closed: Promise<boolean> | undefined;
  server.once('request', () => {
    closed = closeGracefully(server, { timeoutMs: 5_000 });
  });
  const inFlight = await fetch(url);
  expect(await inFlight.text()).toBe('finished');
  expect(await closed).toBe(true);
  await expect(fetch(url)).rejects.toThrow();
});

test('graceful shutdown through the API: an ingestion request in flight at close is stored and answered', async () => {
  const customer = await insertCustomer(db, { external_id: 'shutdown-co' });
  await api.http.call('POST', '/v1/metrics', { code: 's_calls', name: 'Calls', event_type: 's.call', aggregation: 'count' });
  const app = createApp({ db, temporal: new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) }), log: () => undefined });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  let closed: Promise<boolean> | undefined;
  server.once('request', () => {
    closed = closeGracefully(server, { timeoutMs: 5_000 });
  });
  const events = Array.from({ length: 1000 }, (_, i) => ({ id: `s-${i}`, customer: customer.external_id, type: 's.call', timestamp: new Date(Date.now() - 1000).toISOString(), properties: {} }));
  const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/events`, {
    method: 'POST',
    headers: { ...admin.headers, 'content-type': 'application/json' },
    body: JSON.stringify({ events }),
  });
  expect(response.status).toBe(200);
  expect(await response.json()).toMatchObject({ accepted: 1000 });
  expect(await closed).toBe(true);
  expect(Number((await db('usage_events').where('event_id', 'like', 's-%').count<{ count: string }[]>('* as count'))[0].count)).toBe(1000);
});
