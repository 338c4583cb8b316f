/**
 * Authentication and roles over real HTTP and Postgres. The route walk reads the routes Express actually has, with
 * the access each declares (api/route-declarations.ts), so a route added later is covered without touching this file
 * (and cannot exist undeclared: createApp refuses).
 */
import { Client, Connection } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import { assertEveryRouteDeclared, describeRoutes, Grant, listRoutes } from '../../api/route-declarations';
import { createApp } from '../../api/app';
import { generateApiKey, KeyRole } from '../../store/api-keys';
import type { Database } from '../../store/database';
import { serveApiOnly, ApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { ManualClock } from '../support/manual-clock';

let db: Database;
let api: ApiOnly;
let admin: TestApiKey;
const keys = {} as Record<Exclude<KeyRole, 'admin'>, TestApiKey>;
let revoked: TestApiKey;
let expired: TestApiKey;

const ROLES_BUT_ADMIN = ['app', 'finance', 'monitoring', 'customer_usage'] as const;

beforeAll(async () => {
  db = await createTestDatabase();
  const customer = await insertCustomer(db);
  admin = await createTestApiKey(db, 'admin');
  keys.app = await createTestApiKey(db, 'app');
  keys.finance = await createTestApiKey(db, 'finance');
  keys.monitoring = await createTestApiKey(db, 'monitoring');
  keys.customer_usage = await createTestApiKey(db, 'customer_usage', { customerId: customer.id });
  revoked = await createTestApiKey(db, 'admin', { name: 'to be revoked' });
  expired = await createTestApiKey(db, 'admin', { expiresAt: new Date(Date.now() - 1000) });
  api = await serveApiOnly(db);
  expect((await api.http.call('POST', `/v1/api-keys/${revoked.id}/revoke`, { reason: 'test' }, admin.headers)).status).toBe(200);
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

/** A concrete request for a route template: ids become UUIDs that exist nowhere, other params a plain word. */
function concrete(path: string): string {
  return path.replace(/:([A-Za-z_]+)/g, (_match, name: string) => (name === 'id' ? randomUUID() : 'anything'));
}

const newApp = () => createApp({ db, temporal: new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) }), log: () => undefined });
const routes = (): { method: string; path: string; grants: readonly Grant[] }[] => describeRoutes(newApp());

test('the route walk sees every route, and every route declares who may call it', () => {
  const all = routes();
  expect(all.map(({ method, path }) => ({ method, path }))).toEqual(listRoutes(newApp()));
  expect(all.length).toBeGreaterThan(40);
  expect(all.every((route) => Array.isArray(route.grants))).toBe(true);
  expect(all.map((route) => `${route.method} ${route.path}`)).toEqual(expect.arrayContaining(['GET /healthz', 'POST /v1/events', 'POST /v1/api-keys']));
  // A customer usage token only goes where a route says how to tell its own customer's resources.
  expect(describeRoutes(newApp()).filter((route) => route.grants.includes('customer_usage') && !route.customerScope)).toEqual([]);
});

test('an undeclared route cannot exist: the access check names it', () => {
  const app = newApp();
  app.get('/v1/undeclared/:id', (_req, res) => {
    res.json({ leaked: true });
  });
  expect(() => assertEveryRouteDeclared(app)).toThrow(/route GET \/v1\/undeclared\/:id has no access declaration/);
});

test('every non-public route refuses: no key, a malformed or unknown key, a wrong secret, a revoked and an expired key', async () => {
  const [, prefix] = /^ml_([A-Za-z0-9]{12})_/.exec(admin.key)!;
  const wrongSecret = `ml_${prefix}_${generateApiKey().key.slice(-43)}`; // a real key's prefix, another secret
  const cases: [string, Record<string, string>, string][] = [
    ['no key', {}, 'unauthenticated'],
    ['not a bearer token', { authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` }, 'unauthenticated'],
    ['malformed key', { authorization: 'Bearer not-a-key' }, 'unauthenticated'],
    ['unknown key', { authorization: `Bearer ${generateApiKey().key}` }, 'unauthenticated'],
    ['wrong secret', { authorization: `Bearer ${wrongSecret}` }, 'unauthenticated'],
    ['revoked key', revoked.headers, 'api_key_revoked'],
    ['expired key', expired.headers, 'api_key_expired'],
  ];
  let checked = 0;
  for (const route of routes().filter((r) => !r.grants.includes('public'))) {
    for (const [what, headers, code] of cases) {
      const answer = await api.http.call(route.method, concrete(route.path), route.method === 'POST' ? {} : undefined, headers);
      expect({ route: `${route.method} ${route.path}`, what, status: answer.status, code: answer.json?.code, type: answer.type }).toEqual({
        route: `${route.method} ${route.path}`,
        what,
        status: 401,
        code,
        type: expect.stringContaining('application/problem+json'),
      });
      expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer realm="meterloop"/);
      checked += 1;
    }
  }
  expect(checked).toBeGreaterThanOrEqual(25 * cases.length);
  expect(api.temporalCalls).toEqual([]);
});

test('every route refuses each role it does not grant (403 forbidden) and lets each role it grants through', async () => {
  let refused = 0;
  let admitted = 0;
  for (const route of routes().filter((r) => !r.grants.includes('public'))) {
    for (const role of ['admin', ...ROLES_BUT_ADMIN] as const) {
      const headers = role === 'admin' ? admin.headers : keys[role].headers;
      const answer = await api.http.call(route.method, concrete(route.path), route.method === 'POST' ? {} : undefined, headers);
      const label = `${role} -> ${route.method} ${route.path}`;
      if (role === 'admin' || route.grants.includes(role)) {
        // Past authorization: whatever the handler says about an empty body or an unknown id, never 401/403.
        expect({ label, refused: answer.status === 401 || answer.status === 403 }).toEqual({ label, refused: false });
        admitted += 1;
      } else {
        expect({ label, status: answer.status, code: answer.json?.code }).toEqual({ label, status: 403, code: 'forbidden' });
        refused += 1;
      }
    }
  }
  expect(refused).toBeGreaterThan(50);
  expect(admitted).toBeGreaterThan(25);
  expect(api.temporalCalls).toEqual([]);
});

test('public routes need no key; unknown paths need an admin key before they say 404', async () => {
  expect((await api.http.call('GET', '/healthz')).status).toBe(200);
  expect((await api.http.call('GET', '/readyz')).status).toBe(503); // no Temporal server here: not ready, but not 401
  expect((await api.http.call('GET', '/v1/nothing-here')).status).toBe(401);
  expect((await api.http.call('GET', '/v1/nothing-here', undefined, keys.app.headers)).json.code).toBe('forbidden');
  expect((await api.http.call('DELETE', '/v1/customers', undefined, admin.headers)).json.code).toBe('not_found');
});

test('a path parameter that does not decode is 400 malformed_request, but only once the caller may call the route', async () => {
  const malformed = '/v1/customers/%E0%A4%A';
  expect((await api.http.call('GET', malformed)).status).toBe(401);
  expect((await api.http.call('GET', malformed, undefined, keys.monitoring.headers)).json.code).toBe('forbidden');
  expect((await api.http.call('GET', malformed, undefined, keys.app.headers)).json).toMatchObject({ status: 400, code: 'malformed_request' });
  expect((await api.http.call('GET', '/v1/customers/abc%00def', undefined, keys.finance.headers)).json).toMatchObject({ status: 400, code: 'malformed_request' });
  // A usage token is told about the malformed id before its scope is looked up, as any caller allowed there.
  expect((await api.http.call('GET', '/v1/subscriptions/%FF/usage', undefined, keys.customer_usage.headers)).json.code).toBe('malformed_request');
  expect((await api.http.call('GET', '/v1/subscriptions/%FF', undefined, keys.customer_usage.headers)).json.code).toBe('forbidden');
  // Matching is Express's: case-insensitive, an optional trailing slash, HEAD served by GET routes.
  expect((await api.http.call('GET', '/V1/Plans/', undefined, keys.finance.headers)).status).toBe(200);
  expect((await api.http.call('HEAD', '/v1/plans', undefined, keys.monitoring.headers)).status).toBe(403);
  expect((await api.http.call('OPTIONS', '/v1/plans', undefined, keys.app.headers)).status).toBe(403);
});

test('API keys: shown once, stored as a hash, listed without secrets, revocable, optionally expiring; admin only', async () => {
  const created = await api.http.call('POST', '/v1/api-keys', { name: 'billing app', role: 'app' }, admin.headers);
  expect(created.status).toBe(201);
  expect(created.json).toMatchObject({ name: 'billing app', role: 'app', status: 'active', key: expect.stringMatching(/^ml_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}$/) });
  const key: string = created.json.key;
  expect(created.json.prefix).toBe(key.slice(0, 16));

  const row = await db('api_keys').where({ id: created.json.id }).first();
  expect(JSON.stringify(row)).not.toContain(key.slice(16)); // the secret is nowhere in the row
  expect(row.secret_hash).toMatch(/^[0-9a-f]{64}$/);
  const audit = await db('audit_log').where({ subject_id: created.json.id });
  expect(audit).toEqual([expect.objectContaining({ action: 'api_key.created', actor: `api_key:${admin.id}` })]);

  const listed = await api.http.call('GET', '/v1/api-keys', undefined, admin.headers);
  expect(listed.text).not.toContain(key.slice(16));
  expect(listed.json.data.find((k: { id: string }) => k.id === created.json.id)).not.toHaveProperty('key');
  expect(listed.json.data.find((k: { id: string }) => k.id === revoked.id)).toMatchObject({ status: 'revoked' });

  const asNewKey = { authorization: `Bearer ${key}` };
  expect((await api.http.call('GET', '/v1/plans', undefined, asNewKey)).status).toBe(200);
  expect((await api.http.call('POST', '/v1/api-keys', { name: 'escalate', role: 'admin' }, asNewKey)).json.code).toBe('forbidden');
  expect((await api.http.call('POST', `/v1/api-keys/${created.json.id}/revoke`, undefined, admin.headers)).json).toMatchObject({ status: 'revoked' });
  expect((await api.http.call('GET', '/v1/plans', undefined, asNewKey)).json.code).toBe('api_key_revoked');
  expect((await api.http.call('POST', `/v1/api-keys/${randomUUID()}/revoke`, undefined, admin.headers)).json.code).toBe('api_key_not_found');

  // Expiry on an API whose clock the test moves: usable up to the last millisecond, refused from the instant on.
  const clock = new ManualClock();
  const clocked = await serveApiOnly(db, { accessClock: clock.now, rateLimit: false });
  try {
    const expiresAt = clock.now() + 60_000;
    const expiring = await api.http.call('POST', '/v1/api-keys', { name: 'short', role: 'finance', expires_at: new Date(expiresAt).toISOString() }, admin.headers);
    expect(expiring.status).toBe(201);
    const asExpiring = { authorization: `Bearer ${expiring.json.key}` };
    expect((await clocked.http.call('GET', '/v1/invoices', undefined, asExpiring)).status).toBe(200);
    clock.advance(expiresAt - 1 - clock.now());
    expect((await clocked.http.call('GET', '/v1/invoices', undefined, asExpiring)).status).toBe(200);
    clock.advance(1);
    expect((await clocked.http.call('GET', '/v1/invoices', undefined, asExpiring)).json.code).toBe('api_key_expired');
  } finally {
    await clocked.close();
  }
  expect((await api.http.call('POST', '/v1/api-keys', { name: 'past', role: 'app', expires_at: '2001-01-01T00:00:00Z' }, admin.headers)).status).toBe(422);
});

test('a customer usage token reads its own subscriptions usage and nothing else', async () => {
  const plan = await insertPlan(db, { code: `access-plan-${Date.now()}`, billing_interval: 'P1M', flat_fee: '10' });
  const mine = await insertCustomer(db);
  const theirs = await insertCustomer(db);
  const { row: ownSubscription } = await insertSubscription(db, mine, plan, new Date());
  const { row: otherSubscription } = await insertSubscription(db, theirs, plan, new Date());

  expect((await api.http.call('POST', `/v1/customers/${mine.id}/usage-tokens`, {}, keys.finance.headers)).json.code).toBe('forbidden');
  const minted = await api.http.call('POST', `/v1/customers/${mine.id}/usage-tokens`, { expires_in: 600 }, keys.app.headers);
  expect(minted.status).toBe(201);
  expect(minted.json).toMatchObject({ customer_id: mine.id, scope: 'GET /v1/subscriptions/:id/usage' });
  const token = { authorization: `Bearer ${minted.json.token}` };

  const own = await api.http.call('GET', `/v1/subscriptions/${ownSubscription.id}/usage`, undefined, token);
  expect(own).toMatchObject({ status: 200, json: { subscription_id: ownSubscription.id } });
  // Another customer's subscription, or one that does not exist: the same 404, nothing to tell them apart.
  const other = await api.http.call('GET', `/v1/subscriptions/${otherSubscription.id}/usage`, undefined, token);
  const missing = await api.http.call('GET', `/v1/subscriptions/${randomUUID()}/usage`, undefined, token);
  expect([other.status, other.json.code]).toEqual([404, 'subscription_not_found']);
  expect([missing.status, missing.json.code]).toEqual([404, 'subscription_not_found']);
  expect((await api.http.call('GET', `/v1/subscriptions/${ownSubscription.id}`, undefined, token)).json.code).toBe('forbidden');
  expect((await api.http.call('GET', `/v1/customers/${mine.id}`, undefined, token)).json.code).toBe('forbidden');
  expect((await api.http.call('GET', `/v1/subscriptions/${ownSubscription.id}/late-usage`, undefined, token)).json.code).toBe('forbidden');

  const unknownCustomer = await api.http.call('POST', `/v1/customers/${randomUUID()}/usage-tokens`, {}, keys.app.headers);
  expect(unknownCustomer.json.code).toBe('customer_not_found');
  expect((await api.http.call('GET', '/v1/api-keys?role=customer_usage', undefined, admin.headers)).json.data).toEqual(
    expect.arrayContaining([expect.objectContaining({ id: minted.json.id, customer_id: mine.id, status: 'active' })]),
  );
  const expiredToken = await createTestApiKey(db, 'customer_usage', { customerId: mine.id, expiresAt: new Date(Date.now() - 1) });
  expect((await api.http.call('GET', `/v1/subscriptions/${ownSubscription.id}/usage`, undefined, expiredToken.headers)).json.code).toBe('api_key_expired');
});

test('rate limits: a token bucket per key answers 429 rate_limited with Retry-After; other keys are unaffected', async () => {
  // The limiter's clock stands still unless the test moves it, so no token refills behind the test's back.
  const clock = new ManualClock();
  const limited = await serveApiOnly(db, { rateLimit: { perSecond: 1, burst: 3 }, accessClock: clock.now });
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await limited.http.call('GET', '/v1/plans', undefined, keys.app.headers)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const throttled = await limited.http.call('GET', '/v1/plans', undefined, keys.app.headers);
    expect(throttled.json).toMatchObject({ status: 429, code: 'rate_limited' });
    expect(throttled.headers.get('retry-after')).toBe('1');
    expect((await limited.http.call('GET', '/v1/plans', undefined, keys.finance.headers)).status).toBe(200);
    expect((await limited.http.call('GET', '/healthz')).status).toBe(200); // public routes are not throttled
    clock.advance(500); // half a token
    expect((await limited.http.call('GET', '/v1/plans', undefined, keys.app.headers)).status).toBe(429);
    clock.advance(500); // one second after the bucket ran dry: exactly one token
    expect((await limited.http.call('GET', '/v1/plans', undefined, keys.app.headers)).status).toBe(200);
    expect((await limited.http.call('GET', '/v1/plans', undefined, keys.app.headers)).status).toBe(429);
  } finally {
    await limited.close();
  }
});
