/**
 * POST /v1/webhook-endpoints with values the API accepted but the endpoint cannot use: a secret or description
 * holding a NUL character (Postgres text cannot store it: the insert failed with a 500), and a URL with user
 * credentials (fetch refuses to send to such a URL, so every delivery failed until given up, and the warning
 * logged for each failed attempt carried the password). Each is refused with a 422 problem and nothing written.
 */
import type { Logger } from '../../notifications/logger';
import { dispatchOutboxOnce } from '../../notifications/outbox-dispatcher';
import type { Database } from '../../store/database';
import { createWebhookEndpoint, generateWebhookSecret } from '../../store/notifications';
import { enqueueOutboxEvent } from '../../store/outbox';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test.each([
  ['a secret with a NUL character', { url: 'https://example.com/hooks', event_types: ['*'], secret: `whsec_${'a'.repeat(20)}\u0000tail` }],
  ['a description with a NUL character', { url: 'https://example.com/hooks', event_types: ['*'], description: 'accounting\u0000' }],
  ['a URL with a user and password', { url: 'https://hooks:s3cret-password@example.com/hooks', event_types: ['*'] }],
])('%s is refused with a 422 problem and nothing is written', async (_case, body) => {
  const before = await db('webhook_endpoints').count<{ count: string }[]>('* as count');
  const response = await api.http.call('POST', '/v1/webhook-endpoints', body);
  expect([response.status, response.type, response.json.code]).toEqual([422, 'application/problem+json; charset=utf-8', 'validation_failed']);
  expect(await db('webhook_endpoints').count<{ count: string }[]>('* as count')).toEqual(before);
});

test('an endpoint stored earlier with credentials in its URL: the failed-delivery warning does not log the password', async () => {
  await db('webhook_endpoints').update({ enabled: false }); // only this test's endpoint receives the event
  const endpoint = await createWebhookEndpoint(db, { url: 'http://hooks:s3cret-password@127.0.0.1:9/hooks', secret: generateWebhookSecret(), eventTypes: ['*'], enabled: true, description: null });
  await db.transaction((trx) => enqueueOutboxEvent(trx, { eventType: 'invoice.finalized', aggregateType: 'invoice', aggregateId: endpoint.id, dedupeKey: `creds:${endpoint.id}`, payload: {} }));
  const logged: string[] = [];
  const logger: Logger = { info: () => undefined, error: () => undefined, warn: (fields, message) => logged.push(`${message} ${JSON.stringify(fields)}`) };
  await dispatchOutboxOnce({ db, webhooks: { maxAttempts: 1, timeoutMs: 1_000 }, logger });
  expect(logged).toHaveLength(1);
  expect(logged[0]).toContain('webhook delivery failed');
  expect(logged[0]).not.toContain('s3cret-password');
  const [row] = await db('webhook_deliveries').where({ endpoint_id: endpoint.id });
  expect(row.last_error ?? '').not.toContain('s3cret-password');
});
