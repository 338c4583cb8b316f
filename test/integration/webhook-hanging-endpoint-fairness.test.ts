/**
 * One endpoint that hangs (accepts the connection, never answers) must not hold up every other endpoint's
 * webhooks. Deliveries were claimed strictly oldest first, so a burst of events for a hanging endpoint filled
 * every pass (each pass then lasting the full request timeout) and a healthy endpoint's delivery waited behind
 * all of them, pass after pass: with a batch of 100 and a 10 s timeout, a burst of 1,000 events held everyone's
 * webhooks for 100 s, and a steady stream to a dead endpoint starved the others for good. Each pass now takes
 * every endpoint's oldest due deliveries in turn.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../notifications/logger';
import { dispatchOutboxOnce } from '../../notifications/outbox-dispatcher';
import type { Database } from '../../store/database';
import { eventTypeMatches, fanOutUndispatchedEvents } from '../../store/notifications';
import { enqueueOutboxEvent } from '../../store/outbox';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';

let db: Database;
let api: ApiOnly;
let server: http.Server;
let baseUrl: string;
const healthyHits: number[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/hang') return; // never answers
      healthyHits.push(Date.now());
      res.writeHead(200).end('ok');
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

const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

const emit = (eventType: string): Promise<void> =>
  db.transaction((trx) => enqueueOutboxEvent(trx, { eventType, aggregateType: 'invoice', aggregateId: randomUUID(), dedupeKey: `${eventType}:${randomUUID()}`, payload: {} }));

test('a healthy endpoint gets its webhook in the first pass, though a hanging endpoint has a burst of older ones due', async () => {
  expect((await api.http.call('POST', '/v1/webhook-endpoints', { url: `${baseUrl}/hang`, event_types: ['usage.*'] })).status).toBe(201);
  expect((await api.http.call('POST', '/v1/webhook-endpoints', { url: `${baseUrl}/ok`, event_types: ['invoice.*'] })).status).toBe(201);
  for (let i = 0; i < 12; i += 1) await emit('usage.burst'); // for the hanging endpoint, older
  await emit('invoice.finalized'); // for the healthy one

  // Fanned out at once (as a pass with the default batch of 100 would): 12 older deliveries to /hang, then one to /ok.
  await fanOutUndispatchedEvents(db, 100, async (batch) => ({
    webhooks: batch.events.flatMap((event) =>
      batch.endpoints.filter((endpoint) => eventTypeMatches(endpoint.event_types, event.event_type)).map((endpoint) => ({ outboxId: event.id, endpointId: endpoint.id, eventType: event.event_type })),
    ),
    emails: [],
  }));

  const options = { db, batchSize: 4, webhooks: { timeoutMs: 300, maxAttempts: 1 }, logger: quiet };
  let passes = 0;
  while (healthyHits.length === 0 && passes < 10) {
    await dispatchOutboxOnce(options);
    passes += 1;
  }
  expect({ passesUntilHealthyDelivered: passes, healthyHits: healthyHits.length }).toEqual({ passesUntilHealthyDelivered: 1, healthyHits: 1 });
});
