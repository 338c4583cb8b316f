/**
 * Webhook delivery from the outbox to real HTTP endpoints on 127.0.0.1, over a real Postgres: endpoints
 * configured through the API, signed deliveries, retries with exponential backoff, the delivery log, and
 * several dispatchers sharing the work through FOR UPDATE SKIP LOCKED.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../notifications/logger';
import { dispatchOutboxOnce, OutboxDispatcherOptions, startOutboxDispatcher } from '../../notifications/outbox-dispatcher';
import { verifyWebhookSignature, WEBHOOK_SIGNATURE_HEADER } from '../../notifications/webhook-signature';
import type { Database } from '../../store/database';
import type { WebhookDeliveryAttemptRow, WebhookDeliveryRow } from '../../store/notifications';
import { enqueueOutboxEvent } from '../../store/outbox';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';

interface ReceivedRequest {
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly at: number;
}

let db: Database;
let api: ApiOnly;
let server: http.Server;
let baseUrl: string;
const received: ReceivedRequest[] = [];
/** Per path: the status codes to answer with, in order; the last one repeats. `hang` never answers. */
const script = new Map<string, Array<number | 'hang'>>();

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url ?? '/';
      received.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      const answers = script.get(path) ?? [200];
      const answer = answers.length > 1 ? answers.shift()! : answers[0];
      if (answer === 'hang') return; // never answers: the sender's timeout must fire
      res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer >= 400 ? 'receiver exploded' : 'ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await api?.close();
  await db?.destroy();
});

afterEach(async () => {
  // Each test configures its own endpoints and events; nothing leaks into the next one.
  await db('webhook_endpoints').update({ enabled: false });
  await db('outbox').whereNull('dispatched_at').update({ dispatched_at: db.fn.now() });
  await db('webhook_deliveries').where({ status: 'pending' }).update({ status: 'failed', next_attempt_at: null });
  received.length = 0;
  script.clear();
});

async function createEndpoint(path: string, eventTypes: string[]): Promise<{ id: string; secret: string }> {
  const response = await api.http.call('POST', '/v1/webhook-endpoints', { url: `${baseUrl}${path}`, event_types: eventTypes });
  expect(response.status).toBe(201);
  return response.json;
}

async function emit(eventType: string, payload: Record<string, unknown> = {}): Promise<void> {
  await db.transaction((trx) =>
    enqueueOutboxEvent(trx, { eventType, aggregateType: 'invoice', aggregateId: randomUUID(), dedupeKey: `${eventType}:${randomUUID()}`, payload }),
  );
}

/** Dispatchers here poll every 10-20 ms, so the test looks often too. */
const POLL = { timeoutMs: 15_000, intervalMs: 25 };

const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
const fastRetries: OutboxDispatcherOptions['webhooks'] = { initialBackoffMs: 200, maxBackoffMs: 5_000, maxAttempts: 5, jitter: 0, timeoutMs: 2_000 };

test('endpoints are configured through the API; the secret is shown once; bad input is rejected with nothing written', async () => {
  const created = await api.http.call('POST', '/v1/webhook-endpoints', { url: `${baseUrl}/hooks`, event_types: ['invoice.finalized', 'payment.*'], description: 'accounting' });
  expect(created.status).toBe(201);
  expect(created.json).toMatchObject({ url: `${baseUrl}/hooks`, event_types: ['invoice.finalized', 'payment.*'], enabled: true, description: 'accounting' });
  expect(created.json.secret).toMatch(/^whsec_/);

  const listed = await api.http.call('GET', '/v1/webhook-endpoints');
  expect(listed.status).toBe(200);
  const mine = listed.json.data.find((endpoint: { id: string }) => endpoint.id === created.json.id);
  expect(mine).toMatchObject({ secret_hint: `...${created.json.secret.slice(-4)}` });
  expect(mine.secret).toBeUndefined();

  const before = await db('webhook_endpoints').count<{ count: string }[]>('* as count');
  for (const bad of [
    { url: 'ftp://example.com/x', event_types: ['*'] },
    { url: `${baseUrl}/x`, event_types: [] },
    { url: `${baseUrl}/x`, event_types: ['Invoice Finalized'] },
    { url: `${baseUrl}/x`, event_types: ['*'], extra: true },
    { url: `${baseUrl}/x`, event_types: ['*'], secret: 'short' },
  ]) {
    const response = await api.http.call('POST', '/v1/webhook-endpoints', bad);
    expect(response.status).toBe(422);
    expect(response.type).toContain('application/problem+json');
    expect(response.json.code).toBe('validation_failed');
  }
  expect(await db('webhook_endpoints').count<{ count: string }[]>('* as count')).toEqual(before);
});

test('a delivery arrives signed with the documented algorithm; a tampered body fails verification', async () => {
  const endpoint = await createEndpoint('/signed', ['invoice.*']);
  await emit('invoice.finalized', { invoiceId: 'inv_1', total: '29.00', currency: 'USD' });
  await emit('payment.succeeded', { invoiceId: 'inv_1' }); // not subscribed: never sent

  const pass = await dispatchOutboxOnce({ db, webhooks: fastRetries, logger: quiet });
  expect(pass).toMatchObject({ eventsFannedOut: 2, webhookAttempts: 1 });
  expect(received).toHaveLength(1);
  const [delivery] = received;
  expect(delivery.path).toBe('/signed');
  expect(delivery.headers['content-type']).toBe('application/json');
  expect(delivery.headers['meterloop-event-type']).toBe('invoice.finalized');
  expect(delivery.headers['meterloop-delivery-attempt']).toBe('1');
  const signature = delivery.headers[WEBHOOK_SIGNATURE_HEADER.toLowerCase()] as string;
  expect(signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
  expect(verifyWebhookSignature(endpoint.secret, signature, delivery.body, 300)).toBe(true);
  expect(verifyWebhookSignature(endpoint.secret, signature, delivery.body.replace('29.00', '0.01'), 300)).toBe(false);

  const body = JSON.parse(delivery.body);
  expect(body).toMatchObject({ type: 'invoice.finalized', data: { invoiceId: 'inv_1', total: '29.00', currency: 'USD' } });
  expect(body.id).toBe(delivery.headers['meterloop-event-id']);

  const [row] = await db<WebhookDeliveryRow>('webhook_deliveries').where({ endpoint_id: endpoint.id });
  expect(row).toMatchObject({ status: 'delivered', attempt: 1, last_status_code: 200, last_error: null, next_attempt_at: null });
  // A second pass has nothing to do: the event was fanned out once and delivered once.
  expect(await dispatchOutboxOnce({ db, webhooks: fastRetries, logger: quiet })).toEqual({ eventsFannedOut: 0, webhookAttempts: 0, emailAttempts: 0 });
  expect(received).toHaveLength(1);
});

test('an endpoint answering 500 is retried with exponential backoff, every attempt logged, until it answers 200', async () => {
  // Timeline (initial backoff 200 ms, doubling):  t0 500 -> +200 ms 500 -> +400 ms 200 delivered
  script.set('/flaky', [500, 500, 200]);
  const endpoint = await createEndpoint('/flaky', ['*']);
  await emit('payment.failed', { invoiceId: 'inv_2', declineCode: 'insufficient_funds' });

  const dispatcher = startOutboxDispatcher({ db, webhooks: fastRetries, pollIntervalMs: 20, logger: quiet });
  const delivered = await eventually(
    async () => db<WebhookDeliveryRow>('webhook_deliveries').where({ endpoint_id: endpoint.id, status: 'delivered' }).first(),
    'the flaky endpoint to get its delivery',
    POLL,
  );
  await dispatcher.stop();

  expect(delivered).toMatchObject({ attempt: 3, last_status_code: 200, last_error: null, next_attempt_at: null });
  const attempts = await db<WebhookDeliveryAttemptRow>('webhook_delivery_attempts').where({ delivery_id: delivered.id }).orderBy('attempt');
  expect(attempts.map((attempt) => [attempt.attempt, attempt.status_code, attempt.error])).toEqual([
    [1, 500, 'HTTP 500: receiver exploded'],
    [2, 500, 'HTTP 500: receiver exploded'],
    [3, 200, null],
  ]);
  // The log says when each retry was due: 200 ms after the first failure, 400 ms after the second.
  const gap = (index: number): number => attempts[index].next_attempt_at!.getTime() - attempts[index].attempted_at.getTime();
  expect(gap(0)).toBeGreaterThanOrEqual(190);
  expect(gap(1)).toBeGreaterThanOrEqual(390);
  expect(attempts[2].next_attempt_at).toBeNull();

  // And the receiver saw the waits grow, each try signed afresh with the attempt number.
  const tries = received.filter((hit) => hit.path === '/flaky');
  expect(tries.map((hit) => hit.headers['meterloop-delivery-attempt'])).toEqual(['1', '2', '3']);
  expect(tries[1].at - tries[0].at).toBeGreaterThanOrEqual(190);
  expect(tries[2].at - tries[1].at).toBeGreaterThanOrEqual(390);
  expect(tries.every((hit) => verifyWebhookSignature(endpoint.secret, hit.headers['meterloop-signature'] as string, hit.body, 300))).toBe(true);

  // The delivery log is visible through the API.
  const log = await api.http.call('GET', `/v1/webhook-endpoints/${endpoint.id}/deliveries`);
  expect(log.json.data).toEqual([expect.objectContaining({ event_type: 'payment.failed', status: 'delivered', attempt: 3, last_status_code: 200 })]);
});

test('an endpoint that keeps failing is given up after the last attempt; one that hangs times out', async () => {
  script.set('/down', [503]);
  script.set('/hang', ['hang']);
  const down = await createEndpoint('/down', ['*']);
  const hang = await createEndpoint('/hang', ['*']);
  await emit('subscription.past_due', { subscriptionId: 'sub_1' });

  const dispatcher = startOutboxDispatcher({
    db,
    webhooks: { initialBackoffMs: 50, maxBackoffMs: 1_000, maxAttempts: 3, jitter: 0, timeoutMs: 300 },
    pollIntervalMs: 20,
    logger: quiet,
  });
  const [gaveUp, timedOut] = await eventually(
    async () => {
      const rows = await db<WebhookDeliveryRow>('webhook_deliveries').whereIn('endpoint_id', [down.id, hang.id]).where({ status: 'failed' });
      return rows.length === 2 ? [rows.find((row) => row.endpoint_id === down.id)!, rows.find((row) => row.endpoint_id === hang.id)!] : null;
    },
    'both deliveries to fail for good',
    POLL,
  );
  await dispatcher.stop();

  expect(gaveUp).toMatchObject({ attempt: 3, last_status_code: 503, next_attempt_at: null });
  expect(timedOut).toMatchObject({ attempt: 3, last_status_code: null, last_error: 'timeout after 300 ms' });
  expect(received.filter((hit) => hit.path === '/down')).toHaveLength(3);
  const attempts = await db<WebhookDeliveryAttemptRow>('webhook_delivery_attempts').where({ delivery_id: gaveUp.id }).orderBy('attempt');
  expect(attempts.map((attempt) => attempt.next_attempt_at === null)).toEqual([false, false, true]);
});

test('several dispatchers running at once deliver every event exactly once', async () => {
  const endpoint = await createEndpoint('/many', ['order.*']);
  const count = 60;
  for (let index = 0; index < count; index += 1) await emit('order.placed', { index });

  const dispatchers = [1, 2, 3].map(() => startOutboxDispatcher({ db, webhooks: fastRetries, batchSize: 7, pollIntervalMs: 10, logger: quiet }));
  await eventually(
    async () => {
      const [{ delivered }] = await db('webhook_deliveries').where({ endpoint_id: endpoint.id, status: 'delivered' }).count<{ delivered: string }[]>('* as delivered');
      return Number(delivered) === count;
    },
    `all ${count} events delivered`,
    POLL,
  );
  await Promise.all(dispatchers.map((dispatcher) => dispatcher.stop()));

  const hits = received.filter((hit) => hit.path === '/many');
  expect(hits).toHaveLength(count);
  expect(new Set(hits.map((hit) => hit.headers['meterloop-event-id'])).size).toBe(count);
  expect(new Set(hits.map((hit) => JSON.parse(hit.body).data.index)).size).toBe(count);
  const deliveries = await db<WebhookDeliveryRow>('webhook_deliveries').where({ endpoint_id: endpoint.id });
  expect(deliveries.every((delivery) => delivery.attempt === 1)).toBe(true);
});
