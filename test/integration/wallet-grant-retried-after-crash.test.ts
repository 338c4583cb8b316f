/**
 * A grant request retried with its Idempotency-Key grants once. The grant key was a fresh random id per run of the
 * route, so when the first run committed the grant but its answer was never stored (the process died, or the
 * response write failed: the key's claim goes stale, or a 5xx gives it back) the retry ran the route again and
 * granted the credit a second time. The grant key now comes from the request's identity, as the top-up's does.
 */
import { randomUUID } from 'node:crypto';
import type { Database } from '../../store/database';
import { findWallet } from '../../store/wallets';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

/** The first run committed but its answer was never stored: its claim is stale (older than 5 minutes, unanswered). */
async function loseTheAnswer(key: string): Promise<void> {
  await db('idempotency_keys').where({ key }).update({ response_status: null, response_body: null, completed_at: null, released_at: null, created_at: new Date(Date.now() - 10 * 60_000) });
}

test('a grant retried with the same Idempotency-Key after its answer was lost grants once', async () => {
  const customer = await insertCustomer(db, { external_id: 'grant-retry' });
  const key = randomUUID();
  const body = { amount: '10.00', source: 'promotional', currency: 'USD' };
  const first = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, body, { 'idempotency-key': key });
  expect(first.status).toBe(201);
  await loseTheAnswer(key);
  const retry = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, body, { 'idempotency-key': key });
  expect(retry.status).toBe(201);
  const wallet = (await findWallet(db, customer.id, 'USD'))!;
  const grants = await db('wallet_grants').where({ wallet_id: wallet.id });
  expect({ balance: Number(wallet.balance).toFixed(2), grants: grants.length, sameGrant: retry.json.id === first.json.id }).toEqual({ balance: '10.00', grants: 1, sameGrant: true });

  // The key naming another grant (after its answer was lost) is refused, and nothing is written.
  await loseTheAnswer(key);
  const other = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { ...body, amount: '99.00' }, { 'idempotency-key': key });
  expect(other.headers.get('content-type')).toContain('application/problem+json');
  expect(other.status).toBeGreaterThanOrEqual(400);
  expect(other.status).toBeLessThan(500);
  expect(Number((await findWallet(db, customer.id, 'USD'))!.balance).toFixed(2)).toBe('10.00');
});
