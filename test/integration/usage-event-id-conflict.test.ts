/**
 * An event id names one event. A resend of a stored id with other values (event type, timestamp to the stored
 * millisecond, properties as jsonb) was answered as a duplicate: the client believed its corrected value recorded,
 * and the old one was billed. Now it is refused per index with `event_id_conflict` (as an idempotency key reused
 * with other parameters is), counted as rejected; an identical resend stays a duplicate:
 *
 *   stored  e-1  tokens 100   (billed 0.10)
 *   resend  e-1  tokens 450   before: 200 {accepted 0, duplicates 1}  after: 422 event_id_conflict, still 0.10
 *
 * Identical means jsonb equality: key order does not matter, numbers compare by value (1 = 1.0), a number and a
 * string never match ("1" vs 1), and a timestamp in another offset naming the same instant is the same.
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
const periodStart = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000 + 400);
// One clock reading for the whole file: a resend must carry the very instant of the first send. Reading the clock at
// each call put a resend one second later whenever a second boundary fell between the two (a conflict, not a copy).
const fileStartedAt = Math.floor(Date.now() / 1000) * 1000;
const at = (secondsAgo: number) => new Date(fileStartedAt - secondsAgo * 1000);

beforeAll(async () => {
  db = await createTestDatabase();
  headers = (await createTestApiKey(db, 'admin')).headers;
  api = await serveApiOnly(db, { headers });
  for (const metric of [
    { code: 'idc_tokens', name: 'Tokens', event_type: 'idc.llm', aggregation: 'sum', property: 'tokens' },
    { code: 'idc_calls', name: 'Calls', event_type: 'idc.call', aggregation: 'count' },
  ]) {
    expect((await api.http.call('POST', '/v1/metrics', metric)).status).toBe(201);
  }
  acme = await insertCustomer(db, { external_id: 'idc-acme' });
  const plan = await insertPlan(db, {
    code: 'idc-plan',
    billing_interval: 'PT2H',
    flat_fee: '0',
    charges: [
      { metricCode: 'idc_tokens', price: { model: 'per_unit', unitPrice: '0.001' } },
      { metricCode: 'idc_calls', price: { model: 'per_unit', unitPrice: '0.01' } },
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

const tokens = (id: string, value: unknown, timestamp: Date, extra: Record<string, unknown> = {}) => ({
  id,
  customer: 'idc-acme',
  type: 'idc.llm',
  timestamp: timestamp.toISOString(),
  properties: { tokens: value, ...extra },
});

async function stored(eventId: string): Promise<{ event_type: string; properties: Record<string, unknown> }[]> {
  return db('usage_events').where({ customer_id: acme.id, event_id: eventId }).select('event_type', 'properties');
}

async function tokensAmount(): Promise<string> {
  const response = await api.http.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
  expect(response.status).toBe(200);
  return response.json.usage.find((metric: { metric_code: string }) => metric.metric_code === 'idc_tokens').amount;
}

/** Posts a body as raw JSON text (what JSON.stringify cannot write: 1.0, a chosen key order). */
async function postRaw(text: string): Promise<{ status: number; json: { accepted: number; duplicates: number; rejected: number } }> {
  const response = await fetch(`${api.http.baseUrl}/v1/events`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: text });
  return { status: response.status, json: (await response.json()) as { accepted: number; duplicates: number; rejected: number } };
}

test('a resend of a stored id with another value is refused as event_id_conflict; the stored value stays billed', async () => {
  const first = await api.http.call('POST', '/v1/events', tokens('c-1', 100, at(300)));
  expect(first.json).toMatchObject({ accepted: 1, duplicates: 0, rejected: 0 });
  const before = await tokensAmount();

  const changed = await api.http.call('POST', '/v1/events', tokens('c-1', 450, at(300)));
  expect({ status: changed.status, code: changed.json.code, errors: changed.json.errors }).toEqual({
    status: 422,
    code: 'batch_rejected',
    errors: [expect.objectContaining({ index: 0, code: 'event_id_conflict' })],
  });
  expect(changed.type).toContain('application/problem+json');
  expect(await stored('c-1')).toEqual([{ event_type: 'idc.llm', properties: { tokens: 100 } }]);
  expect(await tokensAmount()).toBe(before);
});

test('another event type or another instant under a stored id conflicts too, reported by index beside accepted events', async () => {
  expect((await api.http.call('POST', '/v1/events', tokens('c-2', 5, at(240)))).json).toMatchObject({ accepted: 1 });
  const response = await api.http.call('POST', '/v1/events', {
    events: [
      { id: 'c-2', customer: 'idc-acme', type: 'idc.call', timestamp: at(240).toISOString(), properties: { tokens: 5 } },
      tokens('c-2', 5, new Date(at(240).getTime() + 1)),
      tokens('c-3', 7, at(240)),
      tokens('c-2', 5, at(240)),
    ],
  });
  expect(response.status).toBe(200);
  expect(response.json).toEqual({
    accepted: 1,
    duplicates: 1,
    rejected: 2,
    errors: [expect.objectContaining({ index: 0, code: 'event_id_conflict' }), expect.objectContaining({ index: 1, code: 'event_id_conflict' })],
  });
});

test('an identical resend is a duplicate: jsonb equality, key order and 1 vs 1.0 alike, the same instant in another offset', async () => {
  const stamp = at(200);
  const first = await postRaw(`{"id":"c-4","customer":"idc-acme","type":"idc.llm","timestamp":"${stamp.toISOString()}","properties":{"tokens":1,"model":"small"}}`);
  expect(first.json).toMatchObject({ accepted: 1, duplicates: 0 });
  const plusOne = new Date(stamp.getTime() + 3_600_000).toISOString().replace('Z', '+01:00');
  const again = await postRaw(`{"id":"c-4","customer":"idc-acme","type":"idc.llm","timestamp":"${plusOne}","properties":{"model":"small","tokens":1.0}}`);
  expect(again).toEqual({ status: 200, json: { accepted: 0, duplicates: 1, rejected: 0, errors: [] } });
  // A string is not the number it spells: another value under the same id.
  const asText = await postRaw(`{"id":"c-4","customer":"idc-acme","type":"idc.llm","timestamp":"${stamp.toISOString()}","properties":{"model":"small","tokens":"1"}}`);
  expect(asText.status).toBe(422);
});

test('the same id twice in one batch with other values: the first is stored, the second conflicts; an identical copy is a duplicate', async () => {
  const response = await api.http.call('POST', '/v1/events', {
    events: [tokens('c-5', 10, at(180)), tokens('c-5', 99, at(180)), tokens('c-6', 1, at(180)), tokens('c-6', 1, at(180))],
  });
  expect(response.json).toEqual({ accepted: 2, duplicates: 1, rejected: 1, errors: [expect.objectContaining({ index: 1, code: 'event_id_conflict' })] });
  expect(await stored('c-5')).toEqual([{ event_type: 'idc.llm', properties: { tokens: 10 } }]);
});

test('two requests racing with one id and other values: exactly one is stored, the other is told it conflicts', async () => {
  for (let round = 0; round < 5; round += 1) {
    const id = `race-${round}`;
    const answers = await Promise.all([
      api.http.call('POST', '/v1/events', tokens(id, 11, at(120))),
      api.http.call('POST', '/v1/events', tokens(id, 22, at(120))),
    ]);
    const rows = await stored(id);
    expect(rows).toHaveLength(1);
    const storedValue = rows[0].properties.tokens;
    const winner = answers[storedValue === 11 ? 0 : 1];
    const loser = answers[storedValue === 11 ? 1 : 0];
    expect(winner.json).toMatchObject({ accepted: 1, duplicates: 0, rejected: 0 });
    expect({ status: loser.status, errors: loser.json.errors }).toEqual({ status: 422, errors: [expect.objectContaining({ index: 0, code: 'event_id_conflict' })] });
  }
});

describe('reversals (docs/pricing.md "Reversible outcomes")', () => {
  const deal = (id: string, value: string, timestamp: Date) => ({ id, customer: 'idc-deals', type: 'idc.deal', timestamp: timestamp.toISOString(), properties: { value } });
  const reversal = (id: string, reverses: string, timestamp: Date) => ({ id, customer: 'idc-deals', type: 'idc.deal', timestamp: timestamp.toISOString(), reverses, properties: {} });

  beforeAll(async () => {
    expect((await api.http.call('POST', '/v1/metrics', { code: 'idc_deals', name: 'Deals', event_type: 'idc.deal', aggregation: 'count', property: 'value' })).status).toBe(201);
    const plan = await api.http.call('POST', '/v1/plans', {
      code: 'idc-outcomes', name: 'Outcomes', currency: 'USD', billing_interval: 'PT2H', flat_fee: '0', dispute_window: 'P14D',
      charges: [{ metric_code: 'idc_deals', price: { model: 'percentage', rate: '0.02' } }],
    });
    expect(plan.status).toBe(201);
    const customer = await insertCustomer(db, { external_id: 'idc-deals' });
    const planRow = await db('plans').where({ code: 'idc-outcomes' }).first();
    const { row } = await insertSubscription(db, customer, planRow, periodStart);
    await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: new Date(periodStart.getTime() + 7_200_000) });
  });

  test('an identical resend of a stored reversal is a duplicate, not event_already_reversed; one naming another event conflicts', async () => {
    const deals = await api.http.call('POST', '/v1/events', { events: [deal('d-1', '100.00', at(600)), deal('d-2', '50.00', at(600))] });
    expect(deals.json).toMatchObject({ accepted: 2, rejected: 0 });
    const first = await api.http.call('POST', '/v1/events', reversal('r-1', 'd-1', at(60)));
    expect(first.json).toMatchObject({ accepted: 1, rejected: 0 });

    // The client did not get the answer (a timeout) and sends the very same reversal again.
    const again = await api.http.call('POST', '/v1/events', reversal('r-1', 'd-1', at(60)));
    expect({ status: again.status, body: again.json }).toEqual({ status: 200, body: { accepted: 0, duplicates: 1, rejected: 0, errors: [] } });

    const retargeted = await api.http.call('POST', '/v1/events', reversal('r-1', 'd-2', at(60)));
    expect({ status: retargeted.status, errors: retargeted.json.errors }).toEqual({ status: 422, errors: [expect.objectContaining({ index: 0, code: 'event_id_conflict' })] });
    expect(await db('usage_events').where({ event_id: 'd-2' }).first('reversed_by_event_id')).toEqual({ reversed_by_event_id: null });

    // The same reversal twice in one batch: stored once, the copy a duplicate (before: event_already_reversed).
    const copies = await api.http.call('POST', '/v1/events', { events: [reversal('r-2', 'd-2', at(30)), reversal('r-2', 'd-2', at(30))] });
    expect(copies.json).toEqual({ accepted: 1, duplicates: 1, rejected: 0, errors: [] });
  });

  test('two reversals of one event racing under different ids: one is stored, the other is refused, never a duplicate of nothing', async () => {
    const rounds = 5;
    const deals = await api.http.call('POST', '/v1/events', { events: Array.from({ length: rounds }, (_, round) => deal(`rd-${round}`, '10.00', at(600))) });
    expect(deals.json).toMatchObject({ accepted: rounds });
    for (let round = 0; round < rounds; round += 1) {
      const answers = await Promise.all([
        api.http.call('POST', '/v1/events', reversal(`ra-${round}`, `rd-${round}`, at(20))),
        api.http.call('POST', '/v1/events', reversal(`rb-${round}`, `rd-${round}`, at(20))),
      ]);
      const storedIds = (await db('usage_events').where({ reverses_event_id: `rd-${round}` }).select('event_id')).map((row: { event_id: string }) => row.event_id);
      expect(storedIds).toHaveLength(1);
      const loser = answers[storedIds[0] === `ra-${round}` ? 1 : 0];
      expect({ status: loser.status, errors: loser.json.errors }).toEqual({ status: 422, errors: [expect.objectContaining({ index: 0, code: 'event_already_reversed' })] });
    }
  });
});
