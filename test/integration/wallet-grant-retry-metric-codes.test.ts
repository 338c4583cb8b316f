/**
 * A grant request run again under an Idempotency-Key whose first answer is gone (expired and swept, or lost) finds
 * the grant the key already made and answers it if it is "the same grant". That check compared amount, source,
 * priority and expiry only: a request for a grant that pays any usage took the first request's grant scoped to
 * `tokens` for it (201, nothing granted: the any-usage credit the caller asked for never exists), and a grant scoped
 * to other metrics likewise. It now compares what the grant pays for (metric_codes, in any order) and, when the
 * request names one, effective_at; another grant under the key is refused with a problem, nothing written.
 */
import { randomUUID } from 'node:crypto';
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
  for (const code of ['tokens', 'images']) await db('billable_metrics').insert({ code, name: code, event_type: `llm.${code}`, aggregation: 'sum', property: 'n' });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

/** The key's stored answer expired and was swept: the next request with it runs the route again. */
const forgetTheAnswer = async (key: string) => db('idempotency_keys').where({ key }).delete();
const count = async (table: string): Promise<number> => Number((await db(table).count<{ count: string }[]>('* as count'))[0].count);

test.each([
  ['pays any usage', null],
  ['scoped to other metrics', ['images']],
  ['scoped to more metrics', ['tokens', 'images']],
])('a grant %s under the key of a grant scoped to tokens is refused (409), nothing written', async (_name, metricCodes) => {
  const customer = await insertCustomer(db, { currency: 'USD' });
  const key = randomUUID();
  const body = { amount: '25.00', source: 'promotional', metric_codes: ['tokens'] };
  const first = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, body, { 'idempotency-key': key });
  expect(first.status).toBe(201);
  await forgetTheAnswer(key);
  const before = { grants: await count('wallet_grants'), ledger: await count('wallet_ledger') };

  const other = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { ...body, metric_codes: metricCodes }, { 'idempotency-key': key });
  expect({ status: other.status, type: other.headers.get('content-type'), code: other.json?.code, grantAnswered: other.json?.metric_codes ?? null }).toEqual({
    status: 409,
    code: 'idempotency_key_reused',
    type: expect.stringContaining('application/problem+json'),
    grantAnswered: null,
  });
  expect({ grants: await count('wallet_grants'), ledger: await count('wallet_ledger') }).toEqual(before);
});

test('the same grant, metric codes in another order, is the retry it is', async () => {
  const customer = await insertCustomer(db, { currency: 'USD' });
  const key = randomUUID();
  const body = { amount: '25.00', source: 'promotional', metric_codes: ['tokens', 'images'], effective_at: '2030-01-01T00:00:00Z' };
  const first = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, body, { 'idempotency-key': key });
  expect(first.status).toBe(201);
  await forgetTheAnswer(key);
  const retry = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { ...body, metric_codes: ['images', 'tokens'], effective_at: '2030-01-01T01:00:00+01:00' }, { 'idempotency-key': key });
  expect({ status: retry.status, id: retry.json?.id }).toEqual({ status: 201, id: first.json.id });

  await forgetTheAnswer(key);
  const later = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { ...body, effective_at: '2031-01-01T00:00:00Z' }, { 'idempotency-key': key });
  expect({ status: later.status, type: later.headers.get('content-type'), code: later.json?.code }).toEqual({ status: 409, type: expect.stringContaining('application/problem+json'), code: 'idempotency_key_reused' });
});
