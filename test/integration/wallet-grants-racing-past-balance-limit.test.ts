/**
 * Two grants at once on a wallet near the largest balance it holds (MAX_WALLET_BALANCE, 10^18 - 1), each fitting
 * alone: the route checked the room (creditFits) before taking the wallet lock, so both passed, and the second to
 * take the lock overflowed the NUMERIC(30, 12) balance: a 500 from Postgres instead of a problem document. The room is
 * now checked again under the wallet lock (createGrant): one grant is written, the other refused with 422.
 *
 * Timeline: a test transaction holds the wallet row lock; both requests pass the early check and queue on the lock;
 * the lock is released and they run one after the other.
 */
import type { Knex } from 'knex';
import type { Database } from '../../store/database';
import { findWallet } from '../../store/wallets';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
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

const waitingOnLocks = async (): Promise<number> =>
  Number((await db.raw(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0].n);

test('two grants racing for the last room under the balance limit: one 201, one 422, never a 500', async () => {
  const customer = await insertCustomer(db, { currency: 'USD' });
  // 9.00 of room left.
  expect((await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '999999999999999990.00', source: 'promotional' })).status).toBe(201);
  const wallet = (await findWallet(db, customer.id, 'USD'))!;
  const ledgerBefore = Number((await db('wallet_ledger').where({ wallet_id: wallet.id }).count<{ count: string }[]>('* as count'))[0].count);

  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const holdsLock = new Promise<void>((resolve) => (locked = resolve));
  const holding = db.transaction(async (trx: Knex.Transaction) => {
    await trx('wallets').where({ id: wallet.id }).forUpdate().first();
    locked();
    await released;
  });
  // The racers start once the lock is held: started before, one could take the lock first and finish, and the wait
  // for two waiters below timed out with the holder's transaction left open (a clean-clone CI run).
  await holdsLock;
  const grant = () => api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '6.00', source: 'goodwill' });
  const racing = [grant(), grant()];
  await eventually(async () => (await waitingOnLocks()) >= 2, 'both grants waiting on the wallet lock', { timeoutMs: 15_000, intervalMs: 50 });
  release();
  await holding;
  const answers = await Promise.all(racing);

  const outcome = answers.map((answer) => `${answer.status} ${answer.json?.code ?? answer.json?.amount}`).sort();
  const after = (await findWallet(db, customer.id, 'USD'))!;
  const ledgerAfter = Number((await db('wallet_ledger').where({ wallet_id: wallet.id }).count<{ count: string }[]>('* as count'))[0].count);
  expect({ outcome, problem: answers.find((answer) => answer.status >= 400)?.headers.get('content-type'), balance: after.balance, entries: ledgerAfter - ledgerBefore }).toEqual({
    outcome: ['201 6.00', '422 validation_failed'],
    problem: expect.stringContaining('application/problem+json'),
    balance: '999999999999999996.000000000000',
    entries: 1,
  });
});

test('a grant retried after its answer was lost is answered as made, even when the wallet has no room left for another', async () => {
  const customer = await insertCustomer(db, { currency: 'USD' });
  const key = `retry-${customer.id}`;
  const body = { amount: '600000000000000000.00', source: 'promotional' };
  const first = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, body, { 'idempotency-key': key });
  expect(first.status).toBe(201);
  await db('idempotency_keys').where({ key }).delete(); // its stored answer expired and was swept
  // The grant is there: a retry is that grant, not a second one the room must hold.
  const retry = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, body, { 'idempotency-key': key });
  expect({ status: retry.status, id: retry.json?.id }).toEqual({ status: 201, id: first.json.id });
  expect((await findWallet(db, customer.id, 'USD'))!.balance).toBe('600000000000000000.000000000000');
});
