/**
 * The API degrades, it does not die: Postgres goes away under the running API (a TCP proxy in front of it is cut,
 * which the API sees exactly as a crashed server: connections terminated, then ECONNREFUSED) and comes back.
 *
 *   t0  events A accepted, signalled at once
 *   t1  events B accepted; their summary waits for the signal window (floor 2 s)
 *   t1+ proxy cut: every request answers 503 database_unavailable with Retry-After; the coalescer's timer flush
 *       fails on every tick (logged once, retried next tick); no unhandled rejection
 *   t2  proxy restored (OUTAGE_MS later; 6 s here, the behaviour is the same as for 20 s: nothing in the API waits
 *       on the outage's length) -> requests served again, B's summary signalled, A + B all in Postgres
 */
import type { Client } from '@temporalio/client';
import { Connection, Client as TemporalClient } from '@temporalio/client';
import { createApp } from '../../api/app';
import { UsageSignalCoalescer } from '../../api/usage-signals';
import { createDatabase, Database } from '../../store/database';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabaseWithUrl } from '../support/database';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';
import { startTcpProxy, TcpProxy } from '../support/tcp-proxy';

const OUTAGE_MS = Number(process.env.DATABASE_OUTAGE_MS ?? 6_000);

let db: Database; // straight to Postgres: set-up and the final count
let apiDb: Database; // the API's own pool, through the proxy
let proxy: TcpProxy;
let http: TestHttp;
let temporal: Client;
let usageSignals: UsageSignalCoalescer;
let admin: TestApiKey;
const signals: { workflowId: string; eventCount: number }[] = [];
const coalescerLog: Record<string, unknown>[] = [];
const unhandled: unknown[] = [];
const recordUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

beforeAll(async () => {
  process.on('unhandledRejection', recordUnhandled);
  const database = await createTestDatabaseWithUrl();
  db = database.db;
  proxy = await startTcpProxy(database.url);
  apiDb = createDatabase(proxy.url);
  admin = await createTestApiKey(db, 'admin');
  // The API's Temporal is never reached here (port 1); the coalescer's signals are recorded instead, since what
  // is checked is that none is lost to the database outage.
  temporal = new TemporalClient({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
  const recordingTemporal = {
    withDeadline: (_deadline: number, call: () => Promise<unknown>) => call(),
    workflow: {
      getHandle: (workflowId: string) => ({
        signal: async (_definition: unknown, summary: { eventCount: number }) => {
          signals.push({ workflowId, eventCount: summary.eventCount });
        },
      }),
    },
  } as unknown as Client;
  usageSignals = new UsageSignalCoalescer(apiDb, recordingTemporal, { flushIntervalMs: 100, floorMs: 2_000, log: (entry) => coalescerLog.push(entry) });
  usageSignals.start();
  http = await serve(createApp({ db: apiDb, temporal, usageSignals, log: () => undefined, rateLimit: false }), { headers: admin.headers });
});

afterAll(async () => {
  process.off('unhandledRejection', recordUnhandled);
  await usageSignals?.stop().catch(() => undefined);
  await http?.close();
  await temporal?.connection.close();
  await apiDb?.destroy();
  await proxy?.close();
  await db?.destroy();
});

test('Postgres down under the running API: 503 database_unavailable with Retry-After, then served again, no event lost', async () => {
  const customer = await insertCustomer(db, { external_id: 'outage-customer' });
  const plan = await insertPlan(db, { code: 'outage-plan', billing_interval: 'P1M', flat_fee: '10.00' });
  const { row: subscription } = await insertSubscription(db, customer, plan, new Date(Date.now() - 3_600_000));
  await db('subscriptions').where({ id: subscription.id }).update({ status: 'active' });
  await db('billable_metrics').insert({ code: 'outage_tokens', name: 'Tokens', event_type: 'outage.tokens', aggregation: 'sum', property: 'tokens' });
  const event = (id: string): object => ({ id, customer: 'outage-customer', type: 'outage.tokens', timestamp: new Date().toISOString(), properties: { tokens: 10 } });

  const first = await http.call('POST', '/v1/events', { events: [event('a1'), event('a2'), event('a3')] });
  expect(first.json).toMatchObject({ accepted: 3 });
  await eventually(async () => signals.length === 1, 'the first summary signal');
  const second = await http.call('POST', '/v1/events', { events: [event('b1'), event('b2')] });
  expect(second.json).toMatchObject({ accepted: 2 }); // its summary now waits for the 2 s signal window

  await proxy.cut();
  const outageEnds = Date.now() + OUTAGE_MS;
  const duringOutage = [];
  while (Date.now() < outageEnds - 1_000) {
    const started = Date.now();
    const answer = await http.call('GET', `/v1/customers/${customer.id}`);
    duringOutage.push({ status: answer.status, code: answer.json?.code, retryAfter: answer.headers.get('retry-after'), ms: Date.now() - started });
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const ingestion = await http.call('POST', '/v1/events', { events: [event('c1')] });
  const alive = await http.call('GET', '/healthz');
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, outageEnds - Date.now())));
  await proxy.restore();

  expect(duringOutage.length).toBeGreaterThan(2);
  for (const answer of duringOutage) {
    expect(answer).toEqual({ status: 503, code: 'database_unavailable', retryAfter: expect.stringMatching(/^[1-9][0-9]*$/), ms: expect.any(Number) });
    expect(answer.ms).toBeLessThan(3_000);
  }
  expect(ingestion.status).toBe(503);
  expect(ingestion.type).toContain('application/problem+json');
  expect(ingestion.json).toMatchObject({ code: 'database_unavailable', status: 503 });
  expect(alive.status).toBe(200);

  // Postgres is back: the API serves again and the summary held through the outage is signalled.
  await eventually(async () => (await http.call('GET', `/v1/customers/${customer.id}`)).status === 200, 'the API serving again');
  await eventually(async () => signals.reduce((sum, s) => sum + s.eventCount, 0) === 5, () => `all 5 accepted events signalled (got ${JSON.stringify(signals)})`);
  expect(signals.every((signal) => signal.workflowId === subscription.workflow_id)).toBe(true);
  const stored = await db('usage_events').where({ customer_id: customer.id }).orderBy('event_id').pluck('event_id');
  expect(stored).toEqual(['a1', 'a2', 'a3', 'b1', 'b2']);
  expect((await http.call('POST', '/v1/events', { events: [event('c1')] })).json).toMatchObject({ accepted: 1 });

  // The outage was logged once by the coalescer (not once per tick), and its end too.
  expect(coalescerLog.filter((entry) => entry.level === 'error' || entry.level === 'warn')).toHaveLength(1);
  expect(unhandled).toEqual([]);
});
