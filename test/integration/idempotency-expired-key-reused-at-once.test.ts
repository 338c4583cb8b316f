/**
 * An Idempotency-Key whose stored answer has expired (24 h) may name a new request. Sent again by a client retrying
 * several times at once, only one of the copies takes the key over and runs; the others used to judge by the row as
 * they had read it before that takeover: they replayed the day-old answer (another request's body) or, when the
 * old row held another request's hash, refused the very request that was running as `idempotency_key_reused`.
 * Every copy must get the one answer the request gives now (or 409 idempotency_request_in_progress).
 */
import { randomUUID } from 'node:crypto';
import { requestHash } from '../../api/idempotency';
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';

let db: Database;
let api: ApiOnly;
let admin: TestApiKey;

beforeAll(async () => {
  db = await createTestDatabase();
  admin = await createTestApiKey(db, 'admin');
  api = await serveApiOnly(db, { headers: admin.headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const DAY_AND_AN_HOUR = 25 * 3_600_000;
const count = async (externalId: string): Promise<number> => Number((await db('customers').where({ external_id: externalId }).count<{ count: string }[]>('* as count'))[0].count);

test.each([
  ['the same request', true],
  ['another request', false],
])('an expired key that answered %s, reused by ten copies of a new request at once: one runs, all get its answer', async (label, sameRequest) => {
  const externalId = `expired-key-${sameRequest ? 'same' : 'other'}`;
  const body = { external_id: externalId, name: 'Expired Key Co', currency: 'EUR' };
  const key = randomUUID();
  await db('idempotency_keys').insert({
    api_key_id: admin.id,
    key,
    request_hash: sameRequest ? requestHash('POST', '/v1/customers', body) : 'a request of yesterday',
    claim_id: randomUUID(),
    response_status: 201,
    // Yesterday's answer: another customer.
    response_body: JSON.stringify({ id: randomUUID(), external_id: 'yesterday', name: 'Yesterday Co', email: null, currency: 'EUR', payment_method: null, created_at: new Date(Date.now() - DAY_AND_AN_HOUR).toISOString() }),
    created_at: new Date(Date.now() - DAY_AND_AN_HOUR),
    completed_at: new Date(Date.now() - DAY_AND_AN_HOUR),
  });
  const answers = await Promise.all(Array.from({ length: 10 }, () => api.http.call('POST', '/v1/customers', body, { 'idempotency-key': key })));
  const summary = answers.map((answer) => (answer.status === 201 ? `201 ${answer.json.external_id ?? JSON.stringify(answer.json)}` : `${answer.status} ${answer.json.code}`));
  expect(summary.filter((line) => line !== `201 ${externalId}` && line !== '409 idempotency_request_in_progress')).toEqual([]);
  expect(new Set(answers.filter((answer) => answer.status === 201).map((answer) => answer.text)).size).toBe(1);
  expect(await count(externalId)).toBe(1);
});
