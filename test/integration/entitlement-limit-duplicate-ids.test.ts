/**
 * A hard feature limit (docs/wallets.md) holds when a batch repeats an event id. Ingestion stores an id once, so
 * the limit counts it once; but a copy that comes after a refused one is a new candidate, not a duplicate of a
 * stored event: it must be judged against the limit on its own, never slip past it.
 *
 *   limit 100 tokens, 90 used   batch [a: 50, a: 50]   before: index 0 refused, index 1 stored -> 140 of 100
 *                                                       now:    both refused, nothing stored   -> 90 of 100
 */
import type { Database } from '../../store/database';
import type { CustomerRow } from '../../store/customers';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let acme: CustomerRow;
const periodStart = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000 + 400);
const periodEnd = new Date(periodStart.getTime() + 7_200_000);
const inPeriod = () => new Date(Date.now() - 60_000).toISOString();

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  for (const metric of [
    { code: 'dup_calls', name: 'API calls', event_type: 'dup.call', aggregation: 'count' },
    { code: 'dup_tokens', name: 'Tokens', event_type: 'dup.llm', aggregation: 'sum', property: 'tokens' },
  ]) {
    expect((await api.http.call('POST', '/v1/metrics', metric)).status).toBe(201);
  }
  const plan = await api.http.call('POST', '/v1/plans', {
    code: 'dup-pro',
    name: 'Pro',
    currency: 'USD',
    billing_interval: 'PT2H',
    flat_fee: '0',
    charges: [{ metric_code: 'dup_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }],
    features: [
      { code: 'api_calls', kind: 'metered', metric_code: 'dup_calls', limit: '3' },
      { code: 'tokens', kind: 'metered', metric_code: 'dup_tokens', limit: '100' },
    ],
  });
  expect(plan.status).toBe(201);
  const planRow = await db('plans').where({ code: 'dup-pro' }).first();
  acme = await insertCustomer(db, { external_id: 'dup-acme' });
  const { row } = await insertSubscription(db, acme, planRow, periodStart);
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: periodEnd });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const tokens = (id: string, value: string) => ({ id, customer: 'dup-acme', type: 'dup.llm', timestamp: inPeriod(), properties: { tokens: value } });
const call = (id: string) => ({ id, customer: 'dup-acme', type: 'dup.call', timestamp: inPeriod(), properties: {} });

async function usageOf(feature: string): Promise<{ usage: string; has_access: boolean }> {
  const response = await api.http.call('GET', `/v1/customers/${acme.id}/entitlements/${feature}`);
  expect(response.status).toBe(200);
  return response.json;
}

async function storedTokens(): Promise<string[]> {
  const rows: { properties: { tokens: string } }[] = await db('usage_events').where({ customer_id: acme.id, event_type: 'dup.llm' }).orderBy('id').select('properties');
  return rows.map((row) => row.properties.tokens);
}

test('a copy repeated after a refused event is judged on its own: the limit is never exceeded', async () => {
  expect((await api.http.call('POST', '/v1/events', tokens('t-0', '90'))).json).toMatchObject({ accepted: 1 });

  const repeated = await api.http.call('POST', '/v1/events', { events: [tokens('t-1', '50'), tokens('t-1', '50')] });
  expect(repeated.status).toBe(422);
  expect(repeated.json.code).toBe('batch_rejected');
  expect(repeated.json.errors.map((error: { index: number; code: string }) => [error.index, error.code])).toEqual([
    [0, 'entitlement_limit_reached'],
    [1, 'entitlement_limit_reached'],
  ]);
  expect(await storedTokens()).toEqual(['90']);
  expect(await usageOf('tokens')).toMatchObject({ usage: '90', has_access: true });
});

test('a later, smaller copy of a refused event may still fit; a copy of a stored one with another value conflicts', async () => {
  // 90 used: the 50 is refused, its 5 copy fits (95); a copy of the stored 5 with 50 is another event under the same
  // id: refused as event_id_conflict (docs/usage-events.md, "Resends"), never counted.
  const mixed = await api.http.call('POST', '/v1/events', { events: [tokens('t-2', '50'), tokens('t-2', '5'), tokens('t-2', '50')] });
  expect(mixed.status).toBe(200);
  expect(mixed.json).toMatchObject({
    accepted: 1,
    duplicates: 0,
    rejected: 2,
    errors: [expect.objectContaining({ index: 0, code: 'entitlement_limit_reached' }), expect.objectContaining({ index: 2, code: 'event_id_conflict' })],
  });
  expect(await storedTokens()).toEqual(['90', '5']);
  expect(await usageOf('tokens')).toMatchObject({ usage: '95', has_access: true });
});

test('a count limit: a call repeated in one batch at the limit stays refused', async () => {
  const three = await api.http.call('POST', '/v1/events', { events: [call('c-1'), call('c-2'), call('c-3')] });
  expect(three.json).toMatchObject({ accepted: 3, rejected: 0 });

  const repeated = await api.http.call('POST', '/v1/events', { events: [call('c-4'), call('c-4')] });
  expect(repeated.status).toBe(422);
  expect(repeated.json.errors.map((error: { code: string }) => error.code)).toEqual(['entitlement_limit_reached', 'entitlement_limit_reached']);
  expect(await usageOf('api_calls')).toMatchObject({ usage: '3', has_access: false });
});
