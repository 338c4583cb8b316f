/**
 * A receiver that answers an error whose body holds a NUL byte (a crashing C service, a binary error page):
 * Postgres text cannot store U+0000, so recording the attempt failed, the dispatch pass threw, and the delivery
 * stayed pending with its lease: re-sent every lease (about 50 s) forever, past maxAttempts, never logged.
 * The attempt must be recorded like any other failure and the delivery given up after its last attempt.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../notifications/logger';
import { dispatchOutboxOnce } from '../../notifications/outbox-dispatcher';
import type { Database } from '../../store/database';
import type { WebhookDeliveryAttemptRow, WebhookDeliveryRow } from '../../store/notifications';
import { enqueueOutboxEvent } from '../../store/outbox';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';

let db: Database;
let api: ApiOnly;
let server: http.Server;
let baseUrl: string;
let hits = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      hits += 1;
      res.writeHead(500, { 'content-type': 'text/plain' }).end('segfault\u0000at 0x0');
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

test('an error answer with a NUL byte is logged as a failed attempt and retried on the policy, then given up', async () => {
  const created = await api.http.call('POST', '/v1/webhook-endpoints', { url: `${baseUrl}/nul`, event_types: ['*'] });
  expect(created.status).toBe(201);
  await db.transaction((trx) =>
    enqueueOutboxEvent(trx, { eventType: 'invoice.finalized', aggregateType: 'invoice', aggregateId: randomUUID(), dedupeKey: `nul:${randomUUID()}`, payload: {} }),
  );
  const options = { db, webhooks: { initialBackoffMs: 0, maxBackoffMs: 0, maxAttempts: 2, jitter: 0, timeoutMs: 2_000 }, logger: quiet };

  const passes: string[] = [];
  for (let pass = 0; pass < 3; pass += 1) {
    passes.push(await dispatchOutboxOnce(options).then(() => 'ok', (error: Error) => `threw: ${error.message.slice(0, 80)}`));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(passes).toEqual(['ok', 'ok', 'ok']);

  const delivery = await db<WebhookDeliveryRow>('webhook_deliveries').where({ endpoint_id: created.json.id }).first();
  expect(delivery).toMatchObject({ status: 'failed', attempt: 2, last_status_code: 500, next_attempt_at: null });
  const attempts = await db<WebhookDeliveryAttemptRow>('webhook_delivery_attempts').where({ delivery_id: delivery!.id }).orderBy('attempt');
  expect(attempts.map((attempt) => [attempt.attempt, attempt.status_code, attempt.error])).toEqual([
    [1, 500, 'HTTP 500: segfault\uFFFDat 0x0'],
    [2, 500, 'HTTP 500: segfault\uFFFDat 0x0'],
  ]);
  expect(hits).toBe(2);
});
