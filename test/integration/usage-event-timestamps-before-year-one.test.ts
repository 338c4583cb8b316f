/**
 * Timestamps Postgres cannot store are refused at the edge (docs/usage-events.md, invalid_timestamp), never a 500.
 * RFC 3339 allows year 0000, and an offset can carry 0001-01-01 back into year 0 in UTC; JavaScript reads both,
 * but timestamptz has no year 0, so the insert failed and the whole batch, its valid events with it, answered
 * 500 on every retry. The checks run for a customer without a subscription, whose events are kept for a
 * back-dated start (a customer with one refuses them as before its first start anyway).
 */
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  const metric = { code: 'y0_tokens', name: 'Tokens', event_type: 'y0.llm', aggregation: 'sum', property: 'tokens' };
  expect((await api.http.call('POST', '/v1/metrics', metric)).status).toBe(201);
  await insertCustomer(db, { external_id: 'y0-newcomer' });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const tokens = (id: string, timestamp: string) => ({ id, customer: 'y0-newcomer', type: 'y0.llm', timestamp, properties: { tokens: '1' } });

async function storedEventIds(): Promise<string[]> {
  return (await db('usage_events').orderBy('event_id').select('event_id')).map((row: { event_id: string }) => row.event_id);
}

test('year 0000, and 0001-01-01 with an offset east of UTC, are invalid_timestamp with nothing written', async () => {
  const response = await api.http.call('POST', '/v1/events', {
    events: [tokens('y-1', '0000-01-01T00:00:00Z'), tokens('y-2', '0001-01-01T00:30:00+01:00'), tokens('y-3', '0000-06-15T12:00:00.5-05:00')],
  });
  expect(response.status).toBe(422);
  expect(response.type).toMatch(/^application\/problem\+json/);
  expect(response.json.code).toBe('batch_rejected');
  expect(response.json.errors.map((error: { index: number; code: string }) => [error.index, error.code])).toEqual([
    [0, 'invalid_timestamp'],
    [1, 'invalid_timestamp'],
    [2, 'invalid_timestamp'],
  ]);
  expect(await storedEventIds()).toEqual([]);
});

test('the valid events of a batch are stored beside such a timestamp; the first instant Postgres holds is fine', async () => {
  const response = await api.http.call('POST', '/v1/events', {
    events: [tokens('ok-1', new Date(Date.now() - 60_000).toISOString()), tokens('y-4', '0000-12-31T23:59:59Z'), tokens('ok-2', '0001-01-01T00:00:00Z')],
  });
  expect(response.status).toBe(200);
  expect(response.json).toMatchObject({ accepted: 2, rejected: 1, errors: [{ index: 1, code: 'invalid_timestamp' }] });
  expect(await storedEventIds()).toEqual(['ok-1', 'ok-2']);
});
