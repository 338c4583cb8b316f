/**
 * A JSON number in an event's properties that JSON.parse cannot read as sent is refused (422 value_out_of_range,
 * the path naming the property), not stored as another value. Before, the route read every number as a double:
 * `1e400` became Infinity and was stored as null, so a unique_count metric counted the event as absent and a
 * group_by combination lost its value; `1e-400` and `4.99999999999999999999` were accepted as 0 and 5 for a sum;
 * two 20-digit ids were rounded to one number and counted as one distinct value. Every one of those events was
 * accepted (200) and then billed as something it was not. Numbers a double holds exactly (`1E2`, `1e21`, `2.50`)
 * are still read as numbers. API and a real Postgres.
 */
import type { Database } from '../../store/database';
import type { CustomerRow } from '../../store/customers';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let headers: Record<string, string>;
let acme: CustomerRow;
let subscriptionId: string;
// The subscription started an hour ago (on the hour); its first two-hour period is open.
const periodStart = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000);
const inPeriod = new Date(Date.now() - 60_000).toISOString();

beforeAll(async () => {
  db = await createTestDatabase();
  headers = (await createTestApiKey(db, 'admin')).headers;
  api = await serveApiOnly(db, { headers });
  for (const metric of [
    { code: 'jn_users', name: 'Users', event_type: 'jn.seen', aggregation: 'unique_count', property: 'user' },
    { code: 'jn_tokens', name: 'Tokens', event_type: 'jn.llm', aggregation: 'sum', property: 'tokens', group_by: ['model'] },
  ]) {
    expect((await api.http.call('POST', '/v1/metrics', metric)).status).toBe(201);
  }
  acme = await insertCustomer(db, { external_id: 'jn-acme' });
  const plan = await insertPlan(db, {
    code: 'jn-plan',
    billing_interval: 'PT2H',
    flat_fee: '0',
    charges: [
      { metricCode: 'jn_users', price: { model: 'per_unit', unitPrice: '1.00' } },
      { metricCode: 'jn_tokens', price: { model: 'per_unit', unitPrice: '0.01' } },
    ] as never,
  });
  subscriptionId = (await insertSubscription(db, acme, plan, periodStart)).row.id;
  await db('subscriptions')
    .where({ id: subscriptionId })
    .update({ status: 'active', current_period_start: periodStart, current_period_end: new Date(periodStart.getTime() + 7_200_000) });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

/** POST /v1/events with a body written by hand: JSON.stringify could not write these numbers. */
async function postRaw(body: string): Promise<{ status: number; json: { accepted?: number; errors?: { index: number; code: string; detail: string }[] } }> {
  const response = await fetch(`${api.http.baseUrl}/v1/events`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body });
  return { status: response.status, json: (await response.json()) as never };
}

const seen = (id: string, user: string) => `{"id":"${id}","customer":"jn-acme","type":"jn.seen","timestamp":"${inPeriod}","properties":{"user":${user}}}`;
const llm = (id: string, tokens: string, model = '"small"') => `{"id":"${id}","customer":"jn-acme","type":"jn.llm","timestamp":"${inPeriod}","properties":{"tokens":${tokens},"model":${model}}}`;

test('numbers JSON.parse would alter are refused per event; exact ones are counted as sent', async () => {
  const events = [
    seen('u-inf', '1e400'), // Infinity, stored as null: a user counted as absent
    seen('u-neg-inf', '-1e400'),
    seen('u-big-1', '12345678901234567891'), // both read as 12345678901234567000: two users counted as one
    seen('u-big-2', '12345678901234567892'),
    seen('u-400-digits', '9'.repeat(400)),
    llm('t-tiny', '1e-400'), // read as 0
    llm('t-rounded', '4.99999999999999999999'), // read as 5
    llm('t-model', '10', '1e400'), // the combination's value stored as null
    llm('t-nested', '10', '{"name":"small","size":1e-400}'), // read by no metric, still stored altered
    // Exact as doubles: accepted and counted as sent.
    seen('u-exact', '1e21'),
    seen('u-fraction', '2.50'),
    llm('t-exponent', '1E2'),
    llm('t-plain', '7'),
  ].join(',');
  const response = await postRaw(`{"events":[${events}]}`);

  expect(response.status).toBe(200);
  expect(response.json.accepted).toBe(4);
  expect(response.json.errors?.map(({ index, code }) => [index, code])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8].map((index) => [index, 'value_out_of_range']));
  expect(response.json.errors?.[0].detail).toContain('1e400');
  const stored = await db('usage_events').where({ customer_id: acme.id }).orderBy('event_id').select('event_id', 'properties');
  expect(stored).toEqual([
    { event_id: 't-exponent', properties: { tokens: 100, model: 'small' } },
    { event_id: 't-plain', properties: { tokens: 7, model: 'small' } },
    { event_id: 'u-exact', properties: { user: 1e21 } },
    { event_id: 'u-fraction', properties: { user: 2.5 } },
  ]);

  const preview = await api.http.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
  expect(preview.status).toBe(200);
  const quantities = Object.fromEntries(preview.json.usage.map((metric: { metric_code: string; quantity: string }) => [metric.metric_code, metric.quantity]));
  expect(quantities).toEqual({ jn_users: '2', jn_tokens: '107' });
});

test('one inexact number in a single event refuses it with the property named, nothing stored', async () => {
  const response = await postRaw(seen('u-alone', '1e400'));
  expect(response.status).toBe(422);
  expect(response.json).toMatchObject({ code: 'batch_rejected', errors: [{ index: 0, code: 'value_out_of_range' }] });
  expect(await db('usage_events').where({ event_id: 'u-alone' })).toEqual([]);
});
