/**
 * A new API key's secret and a usage token are shown once and stored only as a hash. Sent with an Idempotency-Key,
 * the answer was stored whole in the idempotency table for 24 hours: the credential in clear, readable by anyone
 * who can read that table (a backup, a read replica, a support query). Now the stored answer leaves the secret out,
 * and a repeat is answered without it.
 */
import { randomUUID } from 'node:crypto';
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let admin: TestApiKey;
let app: TestApiKey;

beforeAll(async () => {
  db = await createTestDatabase();
  admin = await createTestApiKey(db, 'admin');
  app = await createTestApiKey(db, 'app');
  api = await serveApiOnly(db, { headers: admin.headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

/** Every answer the idempotency table holds, as text. */
async function storedAnswers(): Promise<string> {
  const rows: { response_body: string | null }[] = await db('idempotency_keys').select('response_body');
  return rows.map((row) => row.response_body ?? '').join('\n');
}

test("a new API key's secret is not kept with its Idempotency-Key, and a repeat creates no second key", async () => {
  const key = randomUUID();
  const first = await api.http.call('POST', '/v1/api-keys', { name: 'ci deploy', role: 'finance' }, { 'idempotency-key': key });
  expect(first.status).toBe(201);
  const secret: string = first.json.key;
  expect(secret).toMatch(/^ml_/);
  expect(await storedAnswers()).not.toContain(secret);

  const again = await api.http.call('POST', '/v1/api-keys', { name: 'ci deploy', role: 'finance' }, { 'idempotency-key': key });
  expect(again.status).toBe(201);
  expect(again.headers.get('idempotent-replayed')).toBe('true');
  expect(again.json).toMatchObject({ id: first.json.id, key: null });
  expect(await db('api_keys').where({ name: 'ci deploy' }).count({ n: '*' })).toEqual([{ n: '1' }]);
  // The secret works: it was shown once, to the first answer.
  expect((await api.http.call('GET', '/v1/invoices', undefined, { authorization: `Bearer ${secret}` })).status).toBe(200);
});

test('a usage token is not kept with its Idempotency-Key either', async () => {
  const customer = await insertCustomer(db);
  const key = randomUUID();
  const minted = await api.http.call('POST', `/v1/customers/${customer.id}/usage-tokens`, { expires_in: 600 }, { ...app.headers, 'idempotency-key': key });
  expect(minted.status).toBe(201);
  expect(typeof minted.json.token).toBe('string');
  expect(await storedAnswers()).not.toContain(minted.json.token);

  const again = await api.http.call('POST', `/v1/customers/${customer.id}/usage-tokens`, { expires_in: 600 }, { ...app.headers, 'idempotency-key': key });
  expect(again.json).toMatchObject({ id: minted.json.id, token: null });
});
