/**
 * A grant scoped to metrics (`metric_codes`) pays only usage of those metrics (domain/wallet.ts). A code that names no
 * billable metric ("Tokens" for `tokens`, a typo, a metric not created yet) was stored as given: the grant could never
 * pay anything, yet it showed in the balance and then expired; for a `purchased` grant (paid elsewhere) the money was
 * simply lost. Such a grant is refused with 422 validation_failed naming the code, and nothing is written.
 */
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
  await db('billable_metrics').insert({ code: 'tokens', name: 'Tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens' });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const count = async (table: string): Promise<number> => Number((await db(table).count<{ count: string }[]>('* as count'))[0].count);

test('a grant scoped to a metric code that names no metric is refused with 422, nothing written', async () => {
  const customer = await insertCustomer(db, { external_id: 'scoped-grant', currency: 'USD' });
  const before = { wallets: await count('wallets'), grants: await count('wallet_grants'), ledger: await count('wallet_ledger') };

  const typo = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '50.00', source: 'purchased', metric_codes: ['tokens', 'Tokens'] });
  expect({ status: typo.status, type: typo.headers.get('content-type'), code: typo.json?.code, errors: typo.json?.errors }).toEqual({
    status: 422,
    type: expect.stringContaining('application/problem+json'),
    code: 'validation_failed',
    errors: [{ path: 'metric_codes.1', message: expect.stringContaining('Tokens') }],
  });
  expect({ wallets: await count('wallets'), grants: await count('wallet_grants'), ledger: await count('wallet_ledger') }).toEqual(before);

  // The code of an existing metric is a grant as before.
  const scoped = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '50.00', source: 'purchased', metric_codes: ['tokens'] });
  expect({ status: scoped.status, amount: scoped.json?.amount, metric_codes: scoped.json?.metric_codes }).toEqual({ status: 201, amount: '50.00', metric_codes: ['tokens'] });
});
