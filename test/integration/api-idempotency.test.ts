/**
 * Idempotency-Key on every POST, stored in Postgres per API key: a repeat gets the first answer (2xx, 202 and 4xx
 * alike), a reuse for a different request is refused, a failure (5xx) gives its key back, concurrent repeats create
 * one row.
 */
import { Client, Connection } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import { listRoutes } from '../../api/route-declarations';
import { createApp } from '../../api/app';
import { requestHash, storable } from '../../api/idempotency';
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let admin: TestApiKey;
let otherAdmin: TestApiKey;

beforeAll(async () => {
  db = await createTestDatabase();
  admin = await createTestApiKey(db, 'admin');
  otherAdmin = await createTestApiKey(db, 'admin');
  api = await serveApiOnly(db, { headers: admin.headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const customer = (externalId: string) => ({ external_id: externalId, name: 'Idem Co', currency: 'EUR' });
const count = async (table: string, where: Record<string, string>): Promise<number> => Number((await db(table).where(where).count<{ count: string }[]>('* as count'))[0].count);

test('a repeat returns the first response (status and body) and writes nothing more', async () => {
  const key = randomUUID();
  const first = await api.http.call('POST', '/v1/customers', customer('idem-1'), { 'idempotency-key': key });
  expect(first.status).toBe(201);
  expect(first.headers.get('idempotent-replayed')).toBeNull();
  const again = await api.http.call('POST', '/v1/customers', customer('idem-1'), { 'idempotency-key': key });
  expect(again.status).toBe(201);
  expect(again.text).toBe(first.text);
  expect(again.headers.get('idempotent-replayed')).toBe('true');
  expect(await count('customers', { external_id: 'idem-1' })).toBe(1);
  // Without the header the same request is a new one, and the store's own rule answers.
  expect((await api.http.call('POST', '/v1/customers', customer('idem-1'))).json.code).toBe('customer_already_exists');
});

test('the same key for a different request is refused with 409 idempotency_key_reused', async () => {
  const key = randomUUID();
  expect((await api.http.call('POST', '/v1/customers', customer('idem-2'), { 'idempotency-key': key })).status).toBe(201);
  const reused = await api.http.call('POST', '/v1/customers', customer('idem-2-other'), { 'idempotency-key': key });
  expect(reused).toMatchObject({ status: 409, json: { code: 'idempotency_key_reused' } });
  const elsewhere = await api.http.call('POST', '/v1/metrics', { code: 'idem_calls', name: 'Calls', event_type: 'x', aggregation: 'count' }, { 'idempotency-key': key });
  expect(elsewhere.json.code).toBe('idempotency_key_reused');
  expect(await count('customers', { external_id: 'idem-2-other' })).toBe(0);
});

test('keys are scoped per API key: another key may use the same Idempotency-Key for its own request', async () => {
  const key = randomUUID();
  expect((await api.http.call('POST', '/v1/customers', customer('idem-3a'), { 'idempotency-key': key })).status).toBe(201);
  const theirs = await api.http.call('POST', '/v1/customers', customer('idem-3b'), { 'idempotency-key': key, ...otherAdmin.headers });
  expect(theirs.status).toBe(201);
  expect(theirs.headers.get('idempotent-replayed')).toBeNull();
});

test('a rejected request is answered again the same way: its 4xx is stored, a corrected request needs a new key', async () => {
  const key = randomUUID();
  const rejected = await api.http.call('POST', '/v1/customers', { ...customer('idem-4'), currency: 'usd' }, { 'idempotency-key': key });
  expect(rejected).toMatchObject({ status: 422, json: { code: 'validation_failed' } });
  const repeated = await api.http.call('POST', '/v1/customers', { ...customer('idem-4'), currency: 'usd' }, { 'idempotency-key': key });
  expect([repeated.status, repeated.text, repeated.headers.get('idempotent-replayed')]).toEqual([422, rejected.text, 'true']);
  const corrected = await api.http.call('POST', '/v1/customers', customer('idem-4'), { 'idempotency-key': key });
  expect(corrected).toMatchObject({ status: 409, json: { code: 'idempotency_key_reused' } });
  expect((await api.http.call('POST', '/v1/customers', customer('idem-4'), { 'idempotency-key': randomUUID() })).status).toBe(201);
  expect(await count('customers', { external_id: 'idem-4' })).toBe(1);
});

test('a failure is not stored: after a 503 the retry with the same key runs afresh, and the key still refuses a different request', async () => {
  // Temporal refuses to start the subscription's workflow (and cannot be asked whether it exists): the API answers
  // 503 and the retry with the same key tries the start again.
  const refusing = { workflow: { start: () => Promise.reject(new Error('temporal is down')) } } as unknown as Client;
  const acme = await insertCustomer(db, { external_id: 'idem-503', currency: 'USD' });
  await insertPlan(db, { code: 'idem-503', billing_interval: 'P1M', flat_fee: '1.00' });
  await insertPlan(db, { code: 'idem-503-other', billing_interval: 'P1M', flat_fee: '9.00' });
  const key = randomUUID();
  const body = { customer_id: acme.id, plan_code: 'idem-503' };
  const other = { ...body, plan_code: 'idem-503-other' };
  const down = await serveApiOnly(db, { headers: admin.headers, temporal: refusing });
  try {
    const failed = await down.http.call('POST', '/v1/subscriptions', body, { 'idempotency-key': key });
    expect(failed).toMatchObject({ status: 503, json: { code: 'workflow_unavailable' } });
    expect(await db('idempotency_keys').where({ key }).first()).toMatchObject({ completed_at: null, released_at: expect.any(Date) });
    const retried = await down.http.call('POST', '/v1/subscriptions', body, { 'idempotency-key': key });
    expect(retried.status).toBe(503);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();

    // The 503 came after the subscription's row committed (Temporal could not say whether its workflow exists): a
    // different request with the key would find that row by the id the key derives, and be answered with another
    // plan's subscription. It is refused, and nothing is written for it.
    const reused = await down.http.call('POST', '/v1/subscriptions', other, { 'idempotency-key': key });
    expect(reused).toMatchObject({ status: 409, json: { code: 'idempotency_key_reused' } });
    expect(await count('subscriptions', { customer_id: acme.id })).toBe(1);
  } finally {
    await down.close();
  }
  // Once the key has expired the middleware lets any request use it, and the route itself finds the subscription the
  // key derives: it answers with it only for the same customer and plan.
  const forgetful = await serveApiOnly(db, { headers: admin.headers, temporal: refusing, idempotency: { expireAfterMs: 0 } });
  try {
    const later = await forgetful.http.call('POST', '/v1/subscriptions', other, { 'idempotency-key': key });
    expect(later).toMatchObject({ status: 409, json: { code: 'idempotency_key_reused' } });
    expect(later.json.detail).toContain('another customer, plan or start');
    expect(await count('subscriptions', { customer_id: acme.id })).toBe(1);
  } finally {
    await forgetful.close();
  }
});

test('what is stored: every 2xx (202 too) and every 4xx but a timeout or a rate limit; never a 5xx', () => {
  expect([200, 201, 202, 204, 400, 404, 409, 422].filter(storable)).toEqual([200, 201, 202, 204, 400, 404, 409, 422]);
  expect([408, 429, 500, 502, 503].filter(storable)).toEqual([]);
});

test('concurrent duplicates: one request runs, the others wait for it and get its response', async () => {
  const key = randomUUID();
  const body = { code: 'idem_concurrent', name: 'Concurrent', event_type: 'concurrent.call', aggregation: 'count' };
  const answers = await Promise.all(Array.from({ length: 12 }, () => api.http.call('POST', '/v1/metrics', body, { 'idempotency-key': key })));
  const ids = new Set(answers.filter((answer) => answer.status === 201).map((answer) => answer.json.id));
  expect(answers.every((answer) => answer.status === 201 || answer.json.code === 'idempotency_request_in_progress')).toBe(true);
  expect(ids.size).toBe(1);
  expect(await count('billable_metrics', { code: 'idem_concurrent' })).toBe(1);
  expect(answers.filter((answer) => answer.headers.get('idempotent-replayed') === 'true').length).toBe(answers.filter((a) => a.status === 201).length - 1);
});

test('ingestion replays its first verdict: the repeat says accepted, not duplicate', async () => {
  const acme = await insertCustomer(db, { external_id: 'idem-events' });
  await api.http.call('POST', '/v1/metrics', { code: 'idem_events', name: 'E', event_type: 'idem.event', aggregation: 'count' });
  const event = { id: 'e-1', customer: acme.external_id, type: 'idem.event', timestamp: new Date(Date.now() - 1000).toISOString(), properties: {} };
  const key = randomUUID();
  const first = await api.http.call('POST', '/v1/events', event, { 'idempotency-key': key });
  const again = await api.http.call('POST', '/v1/events', event, { 'idempotency-key': key });
  expect(first.json).toMatchObject({ accepted: 1, duplicates: 0 });
  expect(again.json).toEqual(first.json);
  expect((await api.http.call('POST', '/v1/events', event)).json).toMatchObject({ accepted: 0, duplicates: 1 });
});

test('a request still running: a repeat waits, then gets 409 idempotency_request_in_progress; a stale claim is taken over', async () => {
  const body = customer('idem-5');
  const key = randomUUID();
  await db('idempotency_keys').insert({ api_key_id: admin.id, key, request_hash: requestHash('POST', '/v1/customers', body), claim_id: randomUUID() });
  const impatient = await serveApiOnly(db, { headers: admin.headers, idempotency: { waitMs: 200 } });
  try {
    const answer = await impatient.http.call('POST', '/v1/customers', body, { 'idempotency-key': key });
    expect(answer).toMatchObject({ status: 409, json: { code: 'idempotency_request_in_progress' } });
    expect(answer.headers.get('retry-after')).toBe('1');
    expect(await count('customers', { external_id: 'idem-5' })).toBe(0);
  } finally {
    await impatient.close();
  }
  // Its process died: after staleAfterMs the claim is taken over and the request runs.
  const recovering = await serveApiOnly(db, { headers: admin.headers, idempotency: { staleAfterMs: 0 } });
  try {
    expect((await recovering.http.call('POST', '/v1/customers', body, { 'idempotency-key': key })).status).toBe(201);
  } finally {
    await recovering.close();
  }
});

test('every POST route goes through the idempotency check before its handler runs', async () => {
  const impatient = await serveApiOnly(db, { headers: admin.headers, idempotency: { waitMs: 0 } });
  try {
    const app = createApp({ db, temporal: new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) }), log: () => undefined });
    const posts = listRoutes(app).filter((route) => route.method === 'POST');
    expect(posts.length).toBeGreaterThanOrEqual(10);
    for (const route of posts) {
      const path = route.path.replace(/:[A-Za-z_]+/g, randomUUID());
      const body = { probe: route.path };
      // A request with this key is "running": the route answers 409 without reaching its handler.
      const running = randomUUID();
      await db('idempotency_keys').insert({ api_key_id: admin.id, key: running, request_hash: requestHash('POST', path, body), claim_id: randomUUID() });
      const waiting = await impatient.http.call('POST', path, body, { 'idempotency-key': running });
      expect({ route: route.path, code: waiting.json.code }).toEqual({ route: route.path, code: 'idempotency_request_in_progress' });
      // A key that answered another request: refused as reused, whatever the route.
      const used = randomUUID();
      await db('idempotency_keys').insert({ api_key_id: admin.id, key: used, request_hash: 'another request', claim_id: randomUUID(), response_status: 201, response_body: '{}', completed_at: new Date() });
      const reused = await impatient.http.call('POST', path, body, { 'idempotency-key': used });
      expect({ route: route.path, code: reused.json.code }).toEqual({ route: route.path, code: 'idempotency_key_reused' });
    }
  } finally {
    await impatient.close();
  }
  expect(api.temporalCalls).toEqual([]);
});

test('a malformed Idempotency-Key is a validation error', async () => {
  const answer = await api.http.call('POST', '/v1/customers', customer('idem-6'), { 'idempotency-key': 'k'.repeat(201) });
  expect(answer).toMatchObject({ status: 422, json: { code: 'validation_failed', errors: [{ path: 'Idempotency-Key' }] } });
});
