/**
 * A hard feature limit (docs/wallets.md) holds from the first second of a period. The workflow makes the new period
 * the subscription's current one only when it issues the period invoice, after the previous period's usage grace
 * window (PT1H by default): during that window the stored current period is still the closed one. Ingestion took
 * the limit's window from the stored period, so an event stamped in the new period matched no window and passed
 * every limit unchecked.
 *
 *   limit 3 calls     |----- period 1 (stored current period) -----|---- period 2 ----
 *                                                             boundary   grace   now
 *   5 calls stamped in period 2, during the grace window:
 *     before: all 5 accepted (and billed) -> 5 of 3;   now: 3 accepted, 2 refused (entitlement_limit_reached)
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
// The stored period ended 10 minutes ago: the workflow is in the grace window of the period that started then.
const boundary = new Date(Math.floor(Date.now() / 1000) * 1000 - 10 * 60_000);
const periodStart = new Date(boundary.getTime() - 7_200_000);

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  for (const metric of [
    { code: 'grace_calls', name: 'API calls', event_type: 'grace.call', aggregation: 'count' },
    { code: 'grace_tokens', name: 'Tokens', event_type: 'grace.llm', aggregation: 'sum', property: 'tokens' },
  ]) {
    expect((await api.http.call('POST', '/v1/metrics', metric)).status).toBe(201);
  }
  const plan = await api.http.call('POST', '/v1/plans', {
    code: 'grace-pro',
    name: 'Pro',
    currency: 'USD',
    billing_interval: 'PT2H',
    flat_fee: '0',
    charges: [{ metric_code: 'grace_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }],
    features: [
      { code: 'api_calls', kind: 'metered', metric_code: 'grace_calls', limit: '3' },
      { code: 'tokens', kind: 'metered', metric_code: 'grace_tokens', limit: '100' },
    ],
  });
  expect(plan.status).toBe(201);
  const planRow = await db('plans').where({ code: 'grace-pro' }).first();
  acme = await insertCustomer(db, { external_id: 'grace-acme' });
  const { row } = await insertSubscription(db, acme, planRow, periodStart);
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: boundary });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const at = (ms: number) => new Date(ms).toISOString();
const call = (id: string, timestamp = at(Date.now() - 60_000)) => ({ id, customer: 'grace-acme', type: 'grace.call', timestamp, properties: {} });
const tokens = (id: string, value: string, timestamp = at(Date.now() - 60_000)) => ({ id, customer: 'grace-acme', type: 'grace.llm', timestamp, properties: { tokens: value } });

async function stored(type: string, from: Date): Promise<number> {
  const [{ count }] = await db('usage_events').where({ customer_id: acme.id, event_type: type }).andWhere('occurred_at', '>=', from).count<{ count: string }[]>('* as count');
  return Number(count);
}

test('a count limit holds for events of the new period sent during the grace window', async () => {
  const posted = await api.http.call('POST', '/v1/events', { events: [1, 2, 3, 4, 5].map((n) => call(`new-${n}`)) });
  expect(posted.status).toBe(200);
  expect({ accepted: posted.json.accepted, rejected: posted.json.rejected }).toEqual({ accepted: 3, rejected: 2 });
  expect(posted.json.errors.map((error: { index: number; code: string }) => [error.index, error.code])).toEqual([
    [3, 'entitlement_limit_reached'],
    [4, 'entitlement_limit_reached'],
  ]);
  expect(await stored('grace.call', boundary)).toBe(3);
});

test('the closed period keeps its own limit: its late-arriving events are judged against its usage, not the new one', async () => {
  // The closed period had no calls: three stamped in it still fit there, whatever the new period used.
  const old = at(boundary.getTime() - 60_000);
  const posted = await api.http.call('POST', '/v1/events', { events: [call('old-1', old), call('old-2', old), call('old-3', old), call('old-4', old)] });
  expect(posted.status).toBe(200);
  expect({ accepted: posted.json.accepted, rejected: posted.json.rejected }).toEqual({ accepted: 3, rejected: 1 });
  expect((await db('usage_events').where({ customer_id: acme.id, event_type: 'grace.call' }).andWhere('occurred_at', '<', boundary).count<{ count: string }[]>('* as count'))[0].count).toBe('3');
});

test('a sum limit holds in the new period too', async () => {
  const posted = await api.http.call('POST', '/v1/events', { events: [tokens('t-1', '80'), tokens('t-2', '30'), tokens('t-3', '20')] });
  expect(posted.status).toBe(200);
  expect(posted.json).toMatchObject({ accepted: 2, rejected: 1, errors: [expect.objectContaining({ index: 1, code: 'entitlement_limit_reached' })] });
});

test('the answer agrees with ingestion in the grace window: the new period its usage, reset at its end', async () => {
  // The new period used 100 of 100 tokens (the closed one none): no access, as ingestion refuses the next token.
  const nextEnd = new Date(boundary.getTime() + 7_200_000).toISOString();
  const answer = await api.http.call('GET', `/v1/customers/${acme.id}/entitlements/tokens`);
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ usage: '100', limit: '100', has_access: false, resets_at: nextEnd });
  const refused = await api.http.call('POST', '/v1/events', tokens('t-4', '1'));
  expect(refused.status).toBe(422);
  const list = await api.http.call('GET', `/v1/customers/${acme.id}/entitlements`);
  expect(list.json.data).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ feature: 'api_calls', usage: '3', has_access: false, resets_at: nextEnd }),
      expect.objectContaining({ feature: 'tokens', usage: '100', has_access: false, resets_at: nextEnd }),
    ]),
  );
});
