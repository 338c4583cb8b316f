/**
 * `grant_expiry_notice` (how long before a grant expires `grant.expiring` goes out) had no upper bound:
 * "P99999999999999999999Y" was stored, and the notice time (the expiry minus that) is no date at all, so the next
 * wallet timer run sent every grant's notice at once, years before its expiry. It is bounded as billing intervals are
 * (ten years); a longer one is refused with 422 and nothing is written.
 */
import type { Database } from '../../store/database';
import { runWalletTimers } from '../../store/wallet-topups';
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

test('an expiry notice longer than ten years is refused with 422; no notice goes out years early', async () => {
  const customer = await insertCustomer(db, { currency: 'USD' });
  const grant = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '10.00', source: 'promotional', expires_at: '2035-01-01T00:00:00Z' });
  expect(grant.status).toBe(201);

  const huge = await api.http.call('PUT', `/v1/customers/${customer.id}/wallet`, { grant_expiry_notice: 'P99999999999999999999Y' });
  const notices = await runWalletTimers(db, customer.id, new Date());
  const stored = (await db('wallets').where({ customer_id: customer.id }).first('grant_expiry_notice')).grant_expiry_notice;
  expect({ status: huge.status, type: huge.headers.get('content-type'), code: huge.json?.code, stored, noticesSentNow: notices.notices }).toEqual({
    status: 422,
    type: expect.stringContaining('application/problem+json'),
    code: 'validation_failed',
    stored: 'P7D',
    noticesSentNow: 0,
  });

  const decade = await api.http.call('PUT', `/v1/customers/${customer.id}/wallet`, { grant_expiry_notice: 'P11Y' });
  expect(decade.status).toBe(422);

  const month = await api.http.call('PUT', `/v1/customers/${customer.id}/wallet`, { grant_expiry_notice: 'P30D' });
  expect({ status: month.status, notice: month.json?.grant_expiry_notice }).toEqual({ status: 200, notice: 'P30D' });
});
