/**
 * A grouped metric's dimension key (the jsonb text of the event's group_by values, store/rollups.ts COMBINATION_KEY)
 * is a column of usage_rollups' primary key, and a unique_count's counted value one of usage_rollup_distinct_values';
 * a btree entry holds at most 2704 bytes. One event whose group_by values were long (4 x 900 characters pass the
 * per-property limit) failed, once the customer's window existed, the insert of its whole batch
 * (54000: index row size 3672 exceeds btree version 4 maximum 2704): POST /v1/events answered 500 and every event
 * of the batch was lost to the client; reads seeding a window failed the same way.
 *
 * Fixed at the edge (domain/usage-events.ts, USAGE_EVENT_LIMITS.maxIndexedValueBytes): an event whose key, or
 * counted value, of a metric it feeds would take more than 1,000 bytes is refused on its own
 * (`indexed_value_too_long`, path events.<i>.properties.<name>); the rest of the batch is stored.
 */
import { randomBytes } from 'node:crypto';
import type { Database } from '../../store/database';
import type { MetricRow } from '../../store/catalog';
import { rollupUsage } from '../../store/rollups';
import { combinationOf, rollupDimensionKey } from '../../domain/dimensions';
import { USAGE_EVENT_LIMITS } from '../../domain/usage-events';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let customerId: string;
const metrics = new Map<string, MetricRow>();

const DAY = 86_400_000;
const now = Date.now();
const at = (daysAgo: number): string => new Date(now - daysAgo * DAY).toISOString();
const WINDOW = () => ({ customerId, from: new Date(now - 20 * DAY), to: new Date(now + 20 * DAY) });
const long = (): string => randomBytes(450).toString('hex'); // 900 characters
const event = (id: string, type: string, properties: Record<string, unknown>) => ({ id, customer: 'btree-customer', type, timestamp: at(1), properties });
/** The key's bytes with four values of these lengths: `{"a": "…", "b": "…", "c": "…", "d": "…"}` is 36 bytes of frame. */
const FRAME = 36;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  const definitions = [
    { code: 'by_prompt', name: 'Tokens by prompt', event_type: 'p.call', aggregation: 'sum', property: 'tokens', group_by: ['a', 'b', 'c', 'd'] },
    { code: 'prompt_users', name: 'Users', event_type: 'p.call', aggregation: 'unique_count', property: 'user' },
    { code: 'prompt_credits', name: 'Credits back', event_type: 'p.credit', aggregation: 'sum', property: 'credit', allow_negative: true, group_by: ['a', 'b', 'c', 'd'] },
    { code: 'tagged', name: 'Tagged', event_type: 'q.call', aggregation: 'count', filters: { kind: 'tagged' }, group_by: ['a', 'b', 'c', 'd'] },
  ];
  for (const definition of definitions) expect((await api.http.call('POST', '/v1/metrics', definition)).status).toBe(201);
  for (const row of await db<MetricRow>('billable_metrics').select('*')) metrics.set(row.code, row);
  const customer = await insertCustomer(db, { external_id: 'btree-customer' });
  customerId = customer.id;
  const plan = await insertPlan(db, { code: 'btree-plan', billing_interval: 'P1M', flat_fee: '1.00', settings: { disputeWindow: 'P30D' }, charges: [{ metricCode: 'prompt_users', price: { model: 'per_unit', unitPrice: '0.01' } }] as never });
  const { row } = await insertSubscription(db, customer, plan, new Date(now - 10 * DAY));
  await db('subscriptions').where({ id: row.id }).update({ status: 'active' });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const read = () => rollupUsage(db, WINDOW(), [...metrics.values()]).then(() => 'ok', (error: Error) => error.message.replace(/^[\s\S]* - /, ''));

test('an event whose combination key would pass the bound is refused on its own; the batch is stored and the totals stay readable', async () => {
  // The window exists (the usage page read it), then the long event arrives in a batch.
  expect((await api.http.call('POST', '/v1/events', event('short', 'p.call', { tokens: 1, user: 'u1', a: 'x', b: 'y', c: 'z', d: 'w' }))).json.accepted).toBe(1);
  expect(await read()).toBe('ok');

  const response = await api.http.call('POST', '/v1/events', {
    events: [
      event('ok-1', 'p.call', { tokens: 2, user: 'u2', a: 'x', b: 'y', c: 'z', d: 'w' }),
      event('long-key', 'p.call', { tokens: 5, user: 'u3', a: long(), b: long(), c: long(), d: long() }),
      event('long-user', 'p.call', { tokens: 5, user: 'u'.repeat(USAGE_EVENT_LIMITS.maxIndexedValueBytes + 1), a: 'x' }),
      event('ok-2', 'p.call', { tokens: 3, user: 'u4' }),
    ],
  });
  // Before: 500 internal_error (54000), nothing of the batch stored.
  expect(response.status).toBe(200);
  expect(response.json).toEqual({
    accepted: 2,
    duplicates: 0,
    rejected: 2,
    errors: [
      { index: 1, code: 'indexed_value_too_long', detail: expect.stringContaining('metric by_prompt groups by "a", "b", "c", "d"') },
      { index: 2, code: 'indexed_value_too_long', detail: expect.stringContaining('metric prompt_users counts distinct values of "user"') },
    ],
  });
  expect((await db('usage_events').where({ customer_id: customerId }).orderBy('event_id').pluck('event_id')).sort()).toEqual(['ok-1', 'ok-2', 'short']);
  expect(await read()).toBe('ok');

  // A batch of only such events: 422 naming the property to shorten, nothing stored.
  const refused = await api.http.call('POST', '/v1/events', event('long-alone', 'p.call', { tokens: 1, user: 'u5', a: 'x', b: long(), c: long(), d: long() }));
  expect(refused.status).toBe(422);
  expect(refused.json).toMatchObject({ code: 'batch_rejected', errors: [{ index: 0, code: 'indexed_value_too_long', path: 'events.0.properties.b' }] });
  expect(await db('usage_events').where({ customer_id: customerId, event_id: 'long-alone' })).toHaveLength(0);
});

test('the bound is counted on the very text Postgres indexes: a key of exactly 1,000 bytes (escapes, multi-byte) is stored, one more byte is refused', async () => {
  const limit = USAGE_EVENT_LIMITS.maxIndexedValueBytes;
  // 'é' is 2 bytes, '"' is written \" and a newline \n (2 bytes each): 200 + 200 + 282 + 282 + frame = 1000.
  const values = { a: 'é'.repeat(100), b: '"'.repeat(100), c: 'x'.repeat(282), d: '\n'.repeat(141) };
  expect(Buffer.byteLength(rollupDimensionKey(combinationOf(values, ['a', 'b', 'c', 'd'])))).toBe(limit);
  expect(FRAME + 200 + 200 + 282 + 282).toBe(limit);
  const response = await api.http.call('POST', '/v1/events', {
    events: [event('at-bound', 'p.call', { tokens: 1, user: 'u6', ...values }), event('past-bound', 'p.call', { tokens: 1, user: 'u7', ...values, c: 'x'.repeat(283) })],
  });
  expect(response.json).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 1, code: 'indexed_value_too_long' }] });
  expect(response.json.errors[0].detail).toContain('would take 1001 bytes, at most 1000');
  // The running totals hold the key JS computed, byte for byte (so the bound is the one Postgres sees).
  const [stored] = await db('usage_rollups').whereRaw("dimension_key LIKE '%xxx%'").select(db.raw('dimension_key, octet_length(dimension_key)::int AS bytes'));
  expect(stored).toEqual({ dimension_key: rollupDimensionKey(values), bytes: limit });
  // A unique_count value of exactly 1,000 bytes is stored too.
  const user = 'é'.repeat(limit / 2);
  expect((await api.http.call('POST', '/v1/events', event('user-at-bound', 'p.call', { tokens: 1, user }))).json.accepted).toBe(1);
  expect(await read()).toBe('ok');
});

test('a correction (a negative value of an allow_negative metric) is bound the same way', async () => {
  const response = await api.http.call('POST', '/v1/events', {
    events: [event('credit-ok', 'p.credit', { credit: '-2', a: 'x' }), event('credit-long', 'p.credit', { credit: '-2', a: long(), b: long(), c: long(), d: long() })],
  });
  expect(response.json).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 1, code: 'indexed_value_too_long' }] });
});

test('only metrics the event feeds bound it: a grouped metric whose filters the event does not meet indexes nothing of it', async () => {
  const values = { a: long(), b: long(), c: long(), d: long() };
  const response = await api.http.call('POST', '/v1/events', {
    events: [event('untagged-long', 'q.call', { kind: 'other', ...values }), event('tagged-long', 'q.call', { kind: 'tagged', ...values })],
  });
  expect(response.json).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 1, code: 'indexed_value_too_long' }] });
  expect(await read()).toBe('ok');
  // Ingestion matches filters by equality, as Postgres's `properties @> filters` does for scalar filters (a nested
  // array holding the value does not contain it).
  const { rows } = await db.raw(`SELECT '{"kind": ["tagged"]}'::jsonb @> '{"kind": "tagged"}'::jsonb AS nested`);
  expect(rows[0].nested).toBe(false);
});

test('a reversal carries nothing the totals index: one with long properties is stored, and the window is seeded again fine', async () => {
  const response = await api.http.call('POST', '/v1/events', { ...event('reverse-ok-1', 'p.call', { a: long(), b: long(), c: long(), d: long(), user: 'u'.repeat(1_010) }), reverses: 'ok-1' });
  expect(response.json).toMatchObject({ accepted: 1, rejected: 0 });
  expect(await db('usage_events').where({ customer_id: customerId, event_id: 'ok-1' }).first('reversed_by_event_id')).toEqual({ reversed_by_event_id: 'reverse-ok-1' });
  expect(await read()).toBe('ok');
});

test('a group_by value JSON cannot hold as a number (1e999) is refused with its property named, not a 500', async () => {
  // Accepted before and stored as null (the combination lost its value, a unique_count counted it absent): now
  // refused as sent (docs/usage-events.md "JSON numbers"; usage-json-numbers-read-as-sent.test.ts).
  const body = `{"id": "huge-number", "customer": "btree-customer", "type": "p.call", "timestamp": "${at(1)}", "properties": {"tokens": 1, "user": 1e999, "a": 1e999, "b": [1e999]}}`;
  const response = await fetch(`${api.http.baseUrl}/v1/events`, { method: 'POST', headers: { ...(await createTestApiKey(db, 'admin')).headers, 'content-type': 'application/json' }, body });
  expect(response.status).toBe(422);
  expect(await response.json()).toMatchObject({ code: 'batch_rejected', errors: [{ index: 0, code: 'value_out_of_range', path: 'events.0.properties.user' }] });
  expect(await db('usage_events').where({ event_id: 'huge-number' })).toEqual([]);
  // What such a value stored earlier would index still builds a key, without throwing.
  expect(rollupDimensionKey(combinationOf({ a: Infinity, b: [Infinity] }, ['a', 'b', 'c', 'd']))).toContain('"b": "[null]"');
});
