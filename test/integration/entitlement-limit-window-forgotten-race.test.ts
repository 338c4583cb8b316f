/**
 * A hard feature limit (docs/wallets.md) is checked against the period's running total, row-locked in the
 * transaction that stores the events. A reversal (or a period close's claim) forgets the window's totals, to be
 * seeded again by the next reader. Ingestion seeded the window before its transaction and took it as seeded: when
 * the forgetting committed in between, the transaction found no total row, read the usage as 0 and let a whole
 * limit's worth through on top of what was already used.
 *
 *   limit 100 tokens, 90 used     ingestion: seeded? yes -> [reversal of another event forgets the window] -> lock
 *   batch [50]:   before: accepted (usage read as 0) -> 140 of 100;   now: refused, 90 of 100
 */
import type { Database } from '../../store/database';
import type { CustomerRow } from '../../store/customers';
import { hardLimitsOf, insertUsageEventsWithinLimits } from '../../store/entitlements';
import { forgetRollupsOfReversed } from '../../store/rollups';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let acme: CustomerRow;
const periodStart = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000 + 400);
const periodEnd = new Date(periodStart.getTime() + 7_200_000);
const inPeriod = () => new Date(Date.now() - 60_000);

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  expect((await api.http.call('POST', '/v1/metrics', { code: 'race_tokens', name: 'Tokens', event_type: 'race.llm', aggregation: 'sum', property: 'tokens' })).status).toBe(201);
  const plan = await api.http.call('POST', '/v1/plans', {
    code: 'race-pro',
    name: 'Pro',
    currency: 'USD',
    billing_interval: 'PT2H',
    flat_fee: '0',
    charges: [{ metric_code: 'race_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }],
    features: [{ code: 'tokens', kind: 'metered', metric_code: 'race_tokens', limit: '100' }],
  });
  expect(plan.status).toBe(201);
  const planRow = await db('plans').where({ code: 'race-pro' }).first();
  acme = await insertCustomer(db, { external_id: 'race-acme' });
  const { row } = await insertSubscription(db, acme, planRow, periodStart);
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: periodEnd });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test('a window forgotten between the seed check and the limit check is not read as zero usage', async () => {
  const posted = await api.http.call('POST', '/v1/events', { id: 't-1', customer: 'race-acme', type: 'race.llm', timestamp: inPeriod().toISOString(), properties: { tokens: '90' } });
  expect(posted.json).toMatchObject({ accepted: 1 });

  const limits = await hardLimitsOf(db, [acme.id]);
  const event = { customerId: acme.id, eventId: 't-2', eventType: 'race.llm', occurredAt: inPeriod(), properties: { tokens: '50' } };
  // A reversal's transaction forgets the window (under the exclusive rollup lock) and commits while ingestion,
  // which already found the window seeded, waits for the shared lock.
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let forgotten!: () => void;
  const isForgotten = new Promise<void>((resolve) => (forgotten = resolve));
  const reversal = db.transaction(async (trx) => {
    await forgetRollupsOfReversed(trx, [{ customerId: acme.id, occurredAt: inPeriod() }]);
    forgotten();
    await released;
  });
  await isForgotten;
  const ingestion = insertUsageEventsWithinLimits(db, [event], limits);
  await new Promise((resolve) => setTimeout(resolve, 300));
  release();
  await reversal;
  const result = await ingestion;

  expect([...result.overLimit]).toEqual([0]);
  expect(result.inserted).toEqual([]);
  const rows: { properties: { tokens: string } }[] = await db('usage_events').where({ customer_id: acme.id }).select('properties');
  expect(rows.map((row) => row.properties.tokens)).toEqual(['90']);
});
