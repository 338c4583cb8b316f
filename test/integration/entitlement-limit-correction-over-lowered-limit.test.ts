/**
 * A hard feature limit (docs/wallets.md) refuses what would take the usage past it. An immediate plan change to a
 * plan with a lower limit leaves the period's usage above the new limit; a correction (a negative value of an
 * `allow_negative` sum) lowers that usage, yet it was refused because the usage after it was still above the limit:
 * the correction was lost and the customer billed for the usage it took back.
 *
 *   plan A: limit 100 tokens; 90 used   -> plan B (limit 50), same period
 *   correction -20:  before: refused (entitlement_limit_reached), billed 90;  now: accepted, usage 70
 *   +5 while still above 50: refused (it would raise the usage past the limit)
 */
import type { Database } from '../../store/database';
import type { CustomerRow } from '../../store/customers';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let acme: CustomerRow;
let subscriptionId: string;
const periodStart = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000 + 400);
const periodEnd = new Date(periodStart.getTime() + 7_200_000);
const inPeriod = () => new Date(Date.now() - 60_000).toISOString();

const planBody = (code: string, limit: string) => ({
  code,
  name: code,
  currency: 'USD',
  billing_interval: 'PT2H',
  flat_fee: '0',
  charges: [{ metric_code: 'corr_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }],
  features: [{ code: 'tokens', kind: 'metered', metric_code: 'corr_tokens', limit }],
});

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  const metric = await api.http.call('POST', '/v1/metrics', { code: 'corr_tokens', name: 'Tokens', event_type: 'corr.llm', aggregation: 'sum', property: 'tokens', allow_negative: true });
  expect(metric.status).toBe(201);
  expect((await api.http.call('POST', '/v1/plans', planBody('corr-big', '100'))).status).toBe(201);
  expect((await api.http.call('POST', '/v1/plans', planBody('corr-small', '50'))).status).toBe(201);
  const planRow = await db('plans').where({ code: 'corr-big' }).first();
  acme = await insertCustomer(db, { external_id: 'corr-acme' });
  const { row } = await insertSubscription(db, acme, planRow, periodStart);
  subscriptionId = row.id;
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: periodEnd });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const tokens = (id: string, value: string) => ({ id, customer: 'corr-acme', type: 'corr.llm', timestamp: inPeriod(), properties: { tokens: value } });

async function usage(): Promise<{ usage: string; limit: string; has_access: boolean }> {
  const response = await api.http.call('GET', `/v1/customers/${acme.id}/entitlements/tokens`);
  expect(response.status).toBe(200);
  return response.json;
}

test('after a change to a lower limit, a correction that lowers the usage is accepted; an increase is refused', async () => {
  expect((await api.http.call('POST', '/v1/events', tokens('t-1', '90'))).json).toMatchObject({ accepted: 1 });
  // An immediate plan change: the subscription is on the smaller plan for the rest of the same period.
  const small = await db('plans').where({ code: 'corr-small' }).first();
  await db('subscriptions').where({ id: subscriptionId }).update({ plan_id: small.id });
  expect(await usage()).toMatchObject({ usage: '90', limit: '50', has_access: false });

  const correction = await api.http.call('POST', '/v1/events', tokens('c-1', '-20'));
  expect(correction.json).toMatchObject({ accepted: 1, rejected: 0 });
  expect(await usage()).toMatchObject({ usage: '70', has_access: false });

  const more = await api.http.call('POST', '/v1/events', tokens('t-2', '5'));
  expect(more.status).toBe(422);
  expect(more.json.errors).toEqual([expect.objectContaining({ index: 0, code: 'entitlement_limit_reached' })]);
  // A batch: the correction, then an increase that still leaves the usage above the limit, then one that fits.
  const batch = await api.http.call('POST', '/v1/events', { events: [tokens('c-2', '-30'), tokens('t-3', '15'), tokens('t-4', '10')] });
  expect(batch.json).toMatchObject({ accepted: 2, rejected: 1, errors: [expect.objectContaining({ index: 1, code: 'entitlement_limit_reached' })] });
  expect(await usage()).toMatchObject({ usage: '50', has_access: false });
});

/**
 * A reversal (`reverses`) of a negative correction adds its value back: it raises the usage like an increase and is
 * held to the limit like one. Before, reversals were stored outside the limits' transaction, unjudged:
 *
 *   limit 100 tokens at 0.01:  +100 (usage 100), -50 correction (50), +50 (100, fits), reverse the -50 -> 150
 *   billed 1.50 where the hard limit holds the period at 1.00, while +50 sent in its place was refused.
 *
 * Now refused with `entitlement_limit_reached`; with room under the limit the same reversal is accepted.
 */
test('reversing a negative correction cannot take the usage past a hard limit', async () => {
  const plan = { ...planBody('corr-disputable', '100'), dispute_window: 'P1D' };
  expect((await api.http.call('POST', '/v1/plans', plan)).status).toBe(201);
  const globex = await insertCustomer(db, { external_id: 'corr-globex' });
  const { row } = await insertSubscription(db, globex, await db('plans').where({ code: 'corr-disputable' }).first(), periodStart);
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: periodEnd });
  const event = (id: string, value: string) => ({ ...tokens(id, value), customer: 'corr-globex' });
  for (const [id, value] of [['g-1', '100'], ['g-c', '-50'], ['g-2', '50']]) {
    expect((await api.http.call('POST', '/v1/events', event(id, value))).json).toMatchObject({ accepted: 1 });
  }
  const reversal = await api.http.call('POST', '/v1/events', { id: 'g-c-back', customer: 'corr-globex', type: 'corr.llm', timestamp: inPeriod(), properties: {}, reverses: 'g-c' });
  expect(reversal.status).toBe(422);
  expect(reversal.json.errors).toEqual([expect.objectContaining({ index: 0, code: 'entitlement_limit_reached' })]);
  const answer = await api.http.call('GET', `/v1/customers/${globex.id}/entitlements/tokens`);
  expect(answer.json).toMatchObject({ usage: '100', has_access: false });
  // A later correction of -60 makes room (usage 40): reversing the -50 now takes it to 90, within the limit.
  expect((await api.http.call('POST', '/v1/events', event('g-c2', '-60'))).json).toMatchObject({ accepted: 1 });
  const fits = await api.http.call('POST', '/v1/events', { id: 'g-c-back', customer: 'corr-globex', type: 'corr.llm', timestamp: inPeriod(), properties: {}, reverses: 'g-c' });
  expect(fits.json).toMatchObject({ accepted: 1, rejected: 0 });
  expect((await api.http.call('GET', `/v1/customers/${globex.id}/entitlements/tokens`)).json).toMatchObject({ usage: '90', has_access: true });
});
