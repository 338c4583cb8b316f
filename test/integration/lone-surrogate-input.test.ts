/**
 * A lone UTF-16 surrogate ("\ud800" in JSON) has no UTF-8 form: Postgres text stores U+FFFD in its place and jsonb
 * refuses it. Anywhere in a request it is refused as validation_failed, with nothing written. Before, two events with
 * ids "e\udc00" and "e\udc01" were stored as one ("e\ufffd"): the second was counted a duplicate and never billed;
 * a property value with one failed the batch with a 500; a customer's external id was stored altered.
 */
import type { Database } from '../../store/database';
import { createTestApiKey } from '../support/api-keys';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  await insertCustomer(db, { external_id: 'surrogates' });
  await db('billable_metrics').insert({ code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' });
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const event = (id: string, properties: Record<string, unknown> = { n: 1 }) => ({ id, customer: 'surrogates', type: 'api.calls', timestamp: new Date().toISOString(), properties });

test.each([
  ['two event ids that differ only in a lone surrogate', '/v1/events', { events: [event('e\udc00'), event('e\udc01')] }],
  ['a lone surrogate in a property value', '/v1/events', { events: [event('ok-1', { n: 1, note: 'x\ud800' })] }],
  ['a lone surrogate in a property name', '/v1/events', { events: [event('ok-2', { n: 1, ['k\udfff']: 'v' })] }],
  ["a lone surrogate in a customer's external id", '/v1/customers', { external_id: 'c\ud800', name: 'Odd', currency: 'USD' }],
])('%s is refused, nothing written', async (_case, path, body) => {
  const before = await Promise.all([db('usage_events').count<{ count: string }[]>('* as count'), db('customers').count<{ count: string }[]>('* as count')]);
  const answer = await api.http.call('POST', path, body);
  expect([answer.status, answer.type, answer.json.code]).toEqual([422, expect.stringContaining('application/problem+json'), 'validation_failed']);
  expect(answer.json.detail).toMatch(/surrogate/);
  const after = await Promise.all([db('usage_events').count<{ count: string }[]>('* as count'), db('customers').count<{ count: string }[]>('* as count')]);
  expect(after).toEqual(before);
});

test('well-formed pairs (emoji) are ordinary text', async () => {
  const answer = await api.http.call('POST', '/v1/events', { events: [event('emoji-😀', { n: 2, note: '🧾' })] });
  expect(answer.json).toMatchObject({ accepted: 1 });
  expect((await db('usage_events').where({ event_id: 'emoji-😀' }).first()).properties).toMatchObject({ note: '🧾' });
});
