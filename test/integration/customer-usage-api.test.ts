/**
 * The reads behind the customer usage page, over real HTTP and Postgres (no Temporal: none of them asks a
 * workflow): GET /v1/usage-token/me, GET /v1/subscriptions/:id/usage/daily and GET /v1/subscriptions/:id/invoices,
 * each scoped to the usage token's own customer.
 *
 *   period  2030-01-01 12:00 ........................................................ 2030-02-01 12:00
 *   days    | 01-01: 13:00 n=5 u1 eu, 18:00 n=7 u2 us | 01-02: 09:00 n=3 u1 eu, 10:00 n="abc" u3 | 01-03: - | 01-04: 07:00 n=2.5 u1 eu, 3 calls | now 08:00
 */
import { randomUUID } from 'node:crypto';
import type { Database } from '../../store/database';
import { insertUsageEvents, NewUsageEvent } from '../../store/usage';
import type { PlanRow } from '../../store/catalog';
import type { CustomerRow } from '../../store/customers';
import type { SubscriptionRow } from '../../store/subscriptions';
import { utcDaysBetween } from '../../store/daily-usage';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let mine: CustomerRow;
let theirs: CustomerRow;
let subscription: SubscriptionRow;
let otherSubscription: SubscriptionRow;
let scheduled: SubscriptionRow;
let token: TestApiKey;
let admin: TestApiKey;
let app: TestApiKey;

const NOW = new Date('2030-01-04T08:00:00Z');
const PERIOD = { start: new Date('2030-01-01T12:00:00Z'), end: new Date('2030-02-01T12:00:00Z') };
const METRICS = [
  { code: 'cu_calls', name: 'Calls', event_type: 'cu.call', aggregation: 'count', property: null, filters: {} },
  { code: 'cu_tokens', name: 'Tokens', event_type: 'cu.llm', aggregation: 'sum', property: 'n', filters: {} },
  { code: 'cu_peak', name: 'Peak', event_type: 'cu.llm', aggregation: 'max', property: 'n', filters: {} },
  { code: 'cu_last', name: 'Last', event_type: 'cu.llm', aggregation: 'latest', property: 'n', filters: {} },
  { code: 'cu_users', name: 'Users', event_type: 'cu.llm', aggregation: 'unique_count', property: 'user', filters: {} },
  { code: 'cu_eu', name: 'EU tokens', event_type: 'cu.llm', aggregation: 'sum', property: 'n', filters: { region: 'eu' } },
];

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert(METRICS.map((metric) => ({ ...metric, filters: JSON.stringify(metric.filters) })));
  const plan: PlanRow = await insertPlan(db, {
    code: 'cu-plan',
    billing_interval: 'P1M',
    flat_fee: '10.00',
    settings: { creditBucket: '1.00' },
    charges: METRICS.map((metric) => ({ metricCode: metric.code, price: { model: 'per_unit', unitPrice: '0.01' } })) as never,
  });
  mine = await insertCustomer(db, { name: 'Mine' });
  theirs = await insertCustomer(db, { name: 'Theirs' });
  const periodColumns = { status: 'active', current_period_start: PERIOD.start, current_period_end: PERIOD.end };
  subscription = (await insertSubscription(db, mine, plan, PERIOD.start)).row;
  await db('subscriptions').where({ id: subscription.id }).update(periodColumns);
  otherSubscription = (await insertSubscription(db, theirs, plan, PERIOD.start)).row;
  await db('subscriptions').where({ id: otherSubscription.id }).update(periodColumns);
  scheduled = (await insertSubscription(db, mine, plan, new Date('2030-06-01T00:00:00Z'))).row;

  const event = (customer: CustomerRow, id: string, type: string, at: string, properties: Record<string, unknown>): NewUsageEvent => ({
    customerId: customer.id,
    eventId: id,
    eventType: type,
    occurredAt: new Date(at),
    properties,
  });
  await insertUsageEvents(db, [
    event(mine, 'before', 'cu.llm', '2030-01-01T11:59:59Z', { n: 1000, user: 'u9', region: 'eu' }), // before the period
    event(mine, 'e1', 'cu.llm', '2030-01-01T13:00:00Z', { n: 5, user: 'u1', region: 'eu' }),
    event(mine, 'e2', 'cu.llm', '2030-01-01T18:00:00Z', { n: 7, user: 'u2', region: 'us' }),
    event(mine, 'e3', 'cu.llm', '2030-01-02T09:00:00Z', { n: 3, user: 'u1', region: 'eu' }),
    event(mine, 'e4', 'cu.llm', '2030-01-02T10:00:00Z', { n: 'abc', user: 'u3', region: 'us' }), // not a number: absent
    event(mine, 'e5', 'cu.llm', '2030-01-04T07:00:00Z', { n: '2.5', user: 'u1', region: 'eu' }),
    ...[1, 2, 3].map((i) => event(mine, `c${i}`, 'cu.call', `2030-01-04T07:3${i}:00Z`, {})),
    event(theirs, 'x1', 'cu.llm', '2030-01-02T09:00:00Z', { n: 999, user: 'zz', region: 'eu' }),
  ]);

  admin = await createTestApiKey(db, 'admin');
  app = await createTestApiKey(db, 'app');
  token = await createTestApiKey(db, 'customer_usage', { customerId: mine.id, expiresAt: new Date(Date.now() + 3_600_000) });
  api = await serveApiOnly(db, { now: () => NOW });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test('UTC days of a span: an end at midnight opens no new day; very long spans keep their last days', () => {
  expect(utcDaysBetween(new Date('2030-01-01T12:00:00Z'), new Date('2030-01-04T08:00:00Z'))).toEqual(['2030-01-01', '2030-01-02', '2030-01-03', '2030-01-04']);
  expect(utcDaysBetween(new Date('2030-01-01T00:00:00Z'), new Date('2030-01-03T00:00:00Z'))).toEqual(['2030-01-01', '2030-01-02']);
  expect(utcDaysBetween(new Date('2030-01-01T10:00:00Z'), new Date('2030-01-01T10:00:00Z'))).toEqual(['2030-01-01']);
  const decade = utcDaysBetween(new Date('2020-01-01T00:00:00Z'), new Date('2030-01-01T00:00:00Z'));
  expect(decade).toHaveLength(367);
  expect(decade[decade.length - 1]).toBe('2029-12-31');
});

test('daily usage per metric, aggregated per UTC day with each metric aggregation, days without events at 0', async () => {
  const daily = await api.http.call('GET', `/v1/subscriptions/${subscription.id}/usage/daily`, undefined, token.headers);
  expect(daily.status).toBe(200);
  expect(daily.json).toMatchObject({ subscription_id: subscription.id, timezone: 'UTC', as_of: NOW.toISOString(), period: { start: PERIOD.start.toISOString(), end: PERIOD.end.toISOString() } });
  const byCode = Object.fromEntries(
    daily.json.metrics.map((metric: { metric_code: string; days: { date: string; quantity: string }[] }) => [metric.metric_code, metric.days.map((day) => day.quantity)]),
  );
  expect(daily.json.metrics[0].days.map((day: { date: string }) => day.date)).toEqual(['2030-01-01', '2030-01-02', '2030-01-03', '2030-01-04']);
  expect(byCode).toEqual({
    cu_calls: ['0', '0', '0', '3'],
    cu_tokens: ['12', '3', '0', '2.5'],
    cu_peak: ['7', '3', '0', '2.5'],
    cu_last: ['7', '3', '0', '2.5'],
    cu_users: ['2', '2', '0', '1'],
    cu_eu: ['5', '3', '0', '2.5'],
  });
  expect(daily.json.metrics.find((metric: { metric_code: string }) => metric.metric_code === 'cu_calls')).toMatchObject({ name: 'Calls', aggregation: 'count' });
  expect(daily.json.metrics[1].days[0]).toEqual({ date: '2030-01-01', quantity: '12', event_count: 2 });
});

test('for count and sum the days add up to the usage endpoint quantity; unique counts do not (u1 is back every day)', async () => {
  const [daily, usage] = await Promise.all([
    api.http.call('GET', `/v1/subscriptions/${subscription.id}/usage/daily`, undefined, token.headers),
    api.http.call('GET', `/v1/subscriptions/${subscription.id}/usage`, undefined, token.headers),
  ]);
  const period = Object.fromEntries(usage.json.usage.map((metric: { metric_code: string; quantity: string }) => [metric.metric_code, metric.quantity]));
  const summed = (code: string): number =>
    daily.json.metrics.find((metric: { metric_code: string }) => metric.metric_code === code).days.reduce((total: number, day: { quantity: string }) => total + Number(day.quantity), 0);
  for (const code of ['cu_calls', 'cu_tokens', 'cu_eu']) expect([code, summed(code)]).toEqual([code, Number(period[code])]);
  expect(Number(period.cu_peak)).toBe(7);
  expect(Number(period.cu_users)).toBe(3);
  expect(summed('cu_users')).toBe(5);
});

test('a subscription with no open period has no daily usage', async () => {
  const daily = await api.http.call('GET', `/v1/subscriptions/${scheduled.id}/usage/daily`, undefined, token.headers);
  expect(daily.json).toEqual({ subscription_id: scheduled.id, period: null, timezone: 'UTC', metrics: [] });
});

test("the token's customer and subscriptions, live ones first; only a usage token has a 'me'", async () => {
  const me = await api.http.call('GET', '/v1/usage-token/me', undefined, token.headers);
  expect(me.status).toBe(200);
  expect(me.headers.get('cache-control')).toBe('no-store');
  expect(me.json.customer).toEqual({ id: mine.id, external_id: mine.external_id, name: 'Mine', currency: 'USD' });
  expect(me.json.token.expires_at).toEqual(expect.any(String));
  expect(me.json.subscriptions.map((s: { id: string }) => s.id)).toEqual([subscription.id, scheduled.id]);
  expect(me.json.subscriptions[0]).toMatchObject({
    status: 'active',
    plan: { code: 'cu-plan', flat_fee: '10.00', credit_bucket: '1.00', currency: 'USD' },
    current_period_start: PERIOD.start.toISOString(),
  });
  expect(JSON.stringify(me.json)).not.toContain(theirs.id);
  expect((await api.http.call('GET', '/v1/usage-token/me', undefined, admin.headers)).json.code).toBe('not_found');
  expect((await api.http.call('GET', '/v1/usage-token/me', undefined, app.headers)).json.code).toBe('forbidden');
});

test('past invoices: issued invoices and the credit notes against them, newest first; drafts and other subscriptions are not listed', async () => {
  const base = { customer_id: mine.id, currency: 'USD', period_start: PERIOD.start, period_end: PERIOD.end };
  const [paid] = await db('invoices').insert({ ...base, subscription_id: subscription.id, number: 'INV-000900', kind: 'period', status: 'paid', total: '12.00' }).returning('id');
  await db('invoices').insert({ ...base, subscription_id: subscription.id, kind: 'closing', status: 'draft', period_start: PERIOD.end, total: '0' });
  await db('invoices').insert({ ...base, customer_id: theirs.id, subscription_id: otherSubscription.id, number: 'INV-000901', kind: 'period', status: 'paid', total: '12.00' });
  const [note] = await db('invoices')
    .insert({ ...base, subscription_id: null, number: 'CN-000900', kind: 'credit_note', status: 'paid', total: '2.00', credited_invoice_id: paid.id, idempotency_key: 'k1', reason: 'r' })
    .returning('id');

  const listed = await api.http.call('GET', `/v1/subscriptions/${subscription.id}/invoices`, undefined, token.headers);
  expect(listed.status).toBe(200);
  expect(listed.json.data.map((invoice: { number: string }) => invoice.number)).toEqual(['CN-000900', 'INV-000900']);
  expect(listed.json.data[0]).toMatchObject({ id: note.id, kind: 'credit_note', total: '2.00', credited_invoice_id: paid.id });
  expect(listed.json.data[1]).toMatchObject({ id: paid.id, kind: 'period', total: '12.00', status: 'paid' });
  expect(listed.json.data[1]).not.toHaveProperty('credited_invoice_id');
  expect((await api.http.call('GET', `/v1/subscriptions/${subscription.id}/invoices?limit=1`, undefined, token.headers)).json.data).toHaveLength(1);
  expect((await api.http.call('GET', `/v1/subscriptions/${subscription.id}/invoices?limit=0`, undefined, token.headers)).json.code).toBe('validation_failed');
  expect((await api.http.call('GET', `/v1/subscriptions/${subscription.id}/invoices`, undefined, app.headers)).status).toBe(200);
});

test("another customer's subscription, an unknown one and a malformed id are the same 404 to a usage token", async () => {
  for (const id of [otherSubscription.id, randomUUID(), 'not-a-uuid']) {
    for (const route of [`/v1/subscriptions/${id}/usage/daily`, `/v1/subscriptions/${id}/invoices`]) {
      const refused = await api.http.call('GET', route, undefined, token.headers);
      expect([route, refused.status, refused.json.code, refused.type]).toEqual([route, 404, 'subscription_not_found', expect.stringContaining('application/problem+json')]);
    }
  }
  // Staff keys see any subscription.
  expect((await api.http.call('GET', `/v1/subscriptions/${otherSubscription.id}/usage/daily`, undefined, app.headers)).status).toBe(200);
  expect(api.temporalCalls).toEqual([]);
});

test('the page and its two files are public, with a strict content security policy; nothing else under /usage is', async () => {
  const page = await api.http.call('GET', '/usage');
  expect(page.status).toBe(200);
  expect(page.type).toBe('text/html; charset=utf-8');
  expect(page.text).toContain('<script src="/usage/usage-page.js" defer></script>');
  expect(page.headers.get('content-security-policy')).toBe(
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  );
  expect(page.headers.get('referrer-policy')).toBe('no-referrer');
  expect(page.headers.get('x-frame-options')).toBe('DENY');
  const script = await api.http.call('GET', '/usage/usage-page.js');
  expect([script.status, script.type]).toEqual([200, 'text/javascript; charset=utf-8']);
  expect(script.text).not.toMatch(/\.innerHTML\s*=|insertAdjacentHTML|eval\(/);
  expect((await api.http.call('GET', '/usage/usage-page.css')).type).toBe('text/css; charset=utf-8');
  expect((await api.http.call('GET', '/usage/other.js')).status).toBe(401);
});
