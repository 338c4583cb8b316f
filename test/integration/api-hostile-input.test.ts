/**
 * Hostile input, generated: well over a thousand malformed requests across every POST route and every GET route
 * with parameters (the routes are read from Express, so new ones are fuzzed too). Every answer must be a 4xx
 * problem+json with a code; none a 5xx. Afterwards no table changed (a fingerprint of every table's contents, not
 * only row counts) and the API never reached for a workflow: the Temporal client it was given records every
 * start/signalWithStart/getHandle/execute call (there were none), and it dials nothing, so a start could not have
 * slipped through either.
 */
import { Client, Connection } from '@temporalio/client';
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { listRoutes } from '../../api/route-declarations';
import { createApp } from '../../api/app';
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let admin: TestApiKey;
/** Ids that exist, so malformed bodies also meet real resources (the check must come before any write). */
const real = {} as Record<'customer' | 'subscription' | 'invoice' | 'apiKey' | 'webhookEndpoint', string>;

beforeAll(async () => {
  db = await createTestDatabase();
  admin = await createTestApiKey(db, 'admin');
  real.apiKey = (await createTestApiKey(db, 'app', { name: 'fuzz target' })).id;
  const customer = await insertCustomer(db, { external_id: 'fuzz-customer' });
  real.customer = customer.id;
  const plan = await insertPlan(db, { code: 'fuzz-plan', billing_interval: 'P1M', flat_fee: '10.00' });
  real.subscription = (await insertSubscription(db, customer, plan, new Date())).row.id;
  const [invoice] = await db('invoices')
    .insert({ customer_id: customer.id, subscription_id: real.subscription, kind: 'period', status: 'paid', currency: 'USD', period_start: new Date(), period_end: new Date(), total: '10' })
    .returning('id');
  real.invoice = invoice.id;
  await db('billable_metrics').insert({ code: 'fuzz_tokens', name: 'Tokens', event_type: 'fuzz.event', aggregation: 'sum', property: 'tokens' });
  const [endpoint] = await db('webhook_endpoints').insert({ url: 'https://example.com/hook', secret: 'whsec_fuzzfuzzfuzzfuzzfuzzfuzz', event_types: ['*'] }).returning('id');
  real.webhookEndpoint = endpoint.id;
  api = await serveApiOnly(db, { headers: admin.headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

/**
 * Every table's contents, fingerprinted (api_keys without last_used_at, which a request may touch; idempotency_keys
 * left out: a rejection sent with an Idempotency-Key is stored there so that its repeat gets the same answer).
 */
async function fingerprint(): Promise<Record<string, string>> {
  const tables: { table_name: string }[] = (
    await db.raw(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'knex_migrations%' AND table_name <> 'idempotency_keys' ORDER BY 1`)
  ).rows;
  const result: Record<string, string> = {};
  for (const { table_name: table } of tables) {
    const projection = table === 'api_keys' ? `(t.id, t.name, t.role, t.secret_hash, t.customer_id, t.expires_at, t.revoked_at)` : 't';
    const { rows } = await db.raw(`SELECT count(*) AS n, md5(coalesce(string_agg(${projection}::text, '|' ORDER BY ${projection}::text), '')) AS digest FROM ?? t`, [table]);
    result[table] = `${rows[0].n}:${rows[0].digest}`;
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// What a valid body looks like per POST route (never sent as is where it could succeed), and its field kinds.

type Kind = 'string' | 'decimal' | 'currency' | 'int' | 'uuid' | 'datetime' | 'future' | 'duration' | 'enum' | 'array' | 'object' | 'boolean' | 'url';
interface BodySpec {
  readonly valid: Record<string, unknown>;
  readonly required: readonly string[];
  readonly kinds: Readonly<Record<string, Kind>>;
}

const event = { id: 'fz-1', customer: 'fuzz-customer', type: 'fuzz.event', timestamp: new Date(Date.now() - 60_000).toISOString(), properties: { tokens: '5' } };

const SPECS: Record<string, BodySpec> = {
  '/v1/api-keys': { valid: { name: 'k', role: 'app' }, required: ['name', 'role'], kinds: { name: 'string', role: 'enum', expires_at: 'future' } },
  '/v1/api-keys/:id/revoke': { valid: {}, required: [], kinds: { reason: 'string' } },
  '/v1/customers': {
    valid: { external_id: 'fuzz-new', name: 'N', currency: 'USD', email: 'a@example.com', payment_method: 'pm_sandbox_ok' },
    required: ['external_id', 'name', 'currency'],
    kinds: { external_id: 'string', name: 'string', currency: 'currency', email: 'string', payment_method: 'string' },
  },
  '/v1/customers/:id/payment-method': { valid: { payment_method: 'pm_sandbox_declined' }, required: ['payment_method'], kinds: { payment_method: 'string' } },
  '/v1/customers/:id/usage-tokens': { valid: {}, required: [], kinds: { expires_in: 'int' } },
  '/v1/metrics': {
    valid: { code: 'fz', name: 'F', event_type: 'fz.x', aggregation: 'sum', property: 'n', unit_cost: '0.01', filters: { tier: 'gold' } },
    required: ['code', 'name', 'event_type', 'aggregation'],
    kinds: { code: 'string', name: 'string', event_type: 'string', aggregation: 'enum', property: 'string', unit_cost: 'decimal', filters: 'object' },
  },
  '/v1/plans': {
    valid: {
      code: 'fz-plan',
      name: 'F',
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: '1.00',
      credit_bucket: '1.00',
      minimum_commitment: '2.00',
      trial_period: 'P14D',
      usage_grace_period: 'PT1H',
      charges: [{ metric_code: 'fuzz_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }],
    },
    required: ['code', 'name', 'currency', 'billing_interval', 'flat_fee'],
    kinds: {
      code: 'string',
      name: 'string',
      currency: 'currency',
      billing_interval: 'duration',
      trial_period: 'duration',
      usage_grace_period: 'duration',
      flat_fee: 'decimal',
      credit_bucket: 'decimal',
      minimum_commitment: 'decimal',
      charges: 'array',
    },
  },
  '/v1/subscriptions': {
    valid: { customer_id: '', plan_code: 'fuzz-plan', plan_version: 1, start_at: '2031-01-01T00:00:00Z' },
    required: ['customer_id', 'plan_code'],
    kinds: { customer_id: 'uuid', plan_code: 'string', plan_version: 'int', start_at: 'datetime' },
  },
  '/v1/subscriptions/:id/cancel': { valid: { at: 'now', reason: 'fuzz' }, required: ['at', 'reason'], kinds: { at: 'enum', reason: 'string' } },
  '/v1/events': { valid: event, required: ['id', 'customer', 'type', 'timestamp'], kinds: { id: 'string', customer: 'string', type: 'string', timestamp: 'datetime', properties: 'object' } },
  '/v1/invoices/:id/refunds': { valid: { amount: '1.00', reason: 'fuzz' }, required: ['amount', 'reason'], kinds: { amount: 'decimal', reason: 'string' } },
  '/v1/webhook-endpoints': {
    valid: { url: 'https://example.com/fz', event_types: ['invoice.*'], enabled: true, description: 'd', secret: 's'.repeat(30) },
    required: ['url', 'event_types'],
    kinds: { url: 'url', event_types: 'array', enabled: 'boolean', description: 'string', secret: 'string' },
  },
};

const HUGE = 'x'.repeat(100_000);
const BAD_DECIMALS: unknown[] = ['1,5', '1e400', '1E5', 'NaN', 'Infinity', '-1', '', ' 1', '1 ', '0x10', '1.', '.5', '+1', '١٢', '1/2', '1.0000000000001', '9'.repeat(19), '9'.repeat(40), '12.50 USD', 12.5, 0, 1e21, '-0.01'];
const BAD_CURRENCIES: unknown[] = ['usd', 'XXX', 'US', 'USDD', 'ZZZ', '', '€', 'U\u0000D', 840];
const BAD_DURATIONS: unknown[] = ['P0D', 'PT0S', '1 month', 'P', 'PT', 'P1.5M', 'P-1M', 'p1m', 'P99999999999Y', 'P1M ', 30];
const BAD_DATETIMES: unknown[] = ['yesterday', '2031-13-01T00:00:00Z', '2031-02-30T00:00:00Z', '2031-01-01', '2031-01-01T00:00:00', '99999-01-01T00:00:00Z', '', 1_700_000_000];
const WRONG_TYPES: Record<Kind, unknown[]> = {
  string: [123, 1.5, true, null, [], {}, HUGE, 'a\u0000b'],
  decimal: BAD_DECIMALS,
  currency: BAD_CURRENCIES,
  int: ['60', 1.5, -1, 0, 59, 1e21, true, null, [], {}, 'NaN'],
  uuid: ['not-a-uuid', '', 123, null, '00000000-0000-0000-0000-00000000000g', `${randomUUID()}x`],
  datetime: BAD_DATETIMES,
  future: [...BAD_DATETIMES, '2001-01-01T00:00:00Z', '2999-01-01T00:00:00Z'],
  duration: BAD_DURATIONS,
  enum: ['bogus', '', 'ADMIN', 'NOW', 1, null, [], HUGE],
  array: ['x', 1, null, {}, [1, 2], Array.from({ length: 1001 }, () => 'x')],
  object: ['x', 1, null, [], { 'a\u0000': 1 }],
  boolean: ['true', 1, null, 'yes'],
  url: ['ftp://example.com', 'javascript:alert(1)', 'http://', 'not a url', `https://example.com/${HUGE}`, 1],
};

interface FuzzRequest {
  readonly label: string;
  readonly method: string;
  readonly path: string;
  readonly body?: string;
  readonly headers?: Record<string, string>;
}

const json = (value: unknown): string => JSON.stringify(value);

/** Body mutations of a valid body that each make it invalid. */
function bodyMutations(spec: BodySpec): { label: string; body: string }[] {
  const out: { label: string; body: string }[] = [];
  for (const field of spec.required) {
    const { [field]: _dropped, ...rest } = spec.valid;
    out.push({ label: `missing ${field}`, body: json(rest) });
  }
  for (const [field, kind] of Object.entries(spec.kinds)) {
    for (const value of WRONG_TYPES[kind]) out.push({ label: `${field}=${String(json(value)).slice(0, 40)}`, body: json({ ...spec.valid, [field]: value }) });
  }
  out.push({ label: 'extra field', body: json({ ...spec.valid, surprise: 1 }) });
  out.push({ label: 'extra nested __proto__', body: `{${json(spec.valid).slice(1, -1)}${Object.keys(spec.valid).length ? ',' : ''}"__proto__":{"role":"admin"}}` });
  out.push({ label: 'number 1e400 literal', body: `{${json(spec.valid).slice(1, -1)}${Object.keys(spec.valid).length ? ',' : ''}"amount_raw":1e400}` });
  return out;
}

/** Whole-body garbage that no route accepts. */
const GARBAGE_BODIES: { label: string; body: string; headers?: Record<string, string> }[] = [
  { label: 'truncated JSON', body: '{"a":' },
  { label: 'single quotes', body: "{'a':1}" },
  { label: 'trailing comma', body: '{"a":1,}' },
  { label: 'NaN literal', body: '{"a":NaN}' },
  { label: 'bare string', body: '"hello"' },
  { label: 'bare number', body: '12' },
  { label: 'null', body: 'null' },
  { label: 'array', body: '[]' },
  { label: 'array of objects', body: '[{"a":1}]' },
  { label: 'empty object with junk key', body: '{"\\u0000":1}' },
  { label: 'nul in value', body: '{"a":"\\u0000"}' },
  { label: 'deep nesting', body: `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}` },
  { label: 'deep arrays', body: `{"a":${'['.repeat(5_000)}${']'.repeat(5_000)}}` },
  { label: 'huge string', body: json({ a: HUGE }) },
  { label: 'too large', body: json({ a: 'y'.repeat(1_100_000) }) },
  { label: 'text/plain', body: '{"a":1}', headers: { 'content-type': 'text/plain' } },
  { label: 'form', body: 'a=1&b=2', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
  { label: 'xml', body: '<a>1</a>', headers: { 'content-type': 'application/xml' } },
  { label: 'multipart', body: '--x\r\n\r\n--x--', headers: { 'content-type': 'multipart/form-data; boundary=x' } },
  { label: 'utf-16 charset', body: '{"a":1}', headers: { 'content-type': 'application/json; charset=utf-16' } },
  { label: 'bogus charset', body: '{"a":1}', headers: { 'content-type': 'application/json; charset=klingon' } },
  { label: 'gzip garbage', body: 'not gzip at all', headers: { 'content-encoding': 'gzip' } },
  { label: 'unknown encoding', body: '{"a":1}', headers: { 'content-encoding': 'x-zip' } },
  { label: 'no content-type', body: '{"a":1}', headers: { 'content-type': '' } },
  { label: 'bad idempotency key', body: '{"surprise":1}', headers: { 'idempotency-key': 'k'.repeat(300) } },
];

const BAD_IDS = [
  'not-a-uuid',
  '123',
  '%E0%A4%A',
  '%',
  '%00',
  'abc%00def',
  'x'.repeat(4_000),
  '%F0%9F%99%82',
  '00000000-0000-0000-0000-00000000000g',
  "'%20OR%201=1--",
  '..%2F..%2Fetc%2Fpasswd',
  '%7B%7B7*7%7D%7D',
  '1e400',
  'NaN',
  '-1',
  randomUUID(),
];

function realIdFor(path: string): string {
  if (path.startsWith('/v1/customers/')) return real.customer;
  if (path.startsWith('/v1/subscriptions/')) return real.subscription;
  if (path.startsWith('/v1/invoices/')) return real.invoice;
  if (path.startsWith('/v1/api-keys/')) return real.apiKey;
  if (path.startsWith('/v1/webhook-endpoints/')) return real.webhookEndpoint;
  return randomUUID();
}

function generate(routes: { method: string; path: string }[]): FuzzRequest[] {
  const requests: FuzzRequest[] = [];
  const withId = (path: string, id: string): string => path.replace(/:[A-Za-z_]+/g, id);
  const random = fc.sample(fc.jsonValue({ maxDepth: 4 }), { numRuns: 25, seed: 7 });

  for (const route of routes.filter((r) => r.method === 'POST' || r.method === 'PUT' || r.method === 'PATCH')) {
    const { method } = route;
    const known = SPECS[route.path];
    const spec = known ?? { valid: {}, required: [], kinds: {} };
    const valid = route.path === '/v1/subscriptions' ? { ...spec.valid, customer_id: real.customer } : spec.valid;
    // Routes described above meet real resources; others (added later, body unknown here) get ids that exist nowhere,
    // since a route that takes no body may rightly act on an existing resource whatever it was sent.
    const path = route.path.includes(':') ? withId(route.path, known ? realIdFor(route.path) : randomUUID()) : route.path;
    for (const mutation of bodyMutations({ ...spec, valid })) requests.push({ label: mutation.label, method, path, body: mutation.body });
    for (const garbage of GARBAGE_BODIES) requests.push({ label: garbage.label, method, path, body: garbage.body, headers: garbage.headers });
    // Random JSON (seeded, so failures reproduce) with one unknown key, which strict schemas must refuse.
    for (const value of random) {
      const body = value !== null && typeof value === 'object' && !Array.isArray(value) ? { ...value, 'fuzz-unknown': true } : value;
      requests.push({ label: `random ${json(body).slice(0, 40)}`, method, path, body: json(body) });
    }
    // Bad ids in the path, with an otherwise valid body: nothing is found, nothing is written.
    if (route.path.includes(':')) {
      for (const id of BAD_IDS) requests.push({ label: `bad id ${id.slice(0, 30)}`, method, path: withId(route.path, id), body: json(valid) });
    }
  }
  // Ingestion: batches whose every event is wrong, and batches too large.
  const badEvents = [
    { ...event, timestamp: 'not a time' },
    { ...event, customer: 'nobody' },
    { ...event, properties: { tokens: '1,5' } },
    { ...event, properties: { tokens: 1e300 } },
    { ...event, properties: { tokens: 'NaN' } },
    { ...event, timestamp: '2099-01-01T00:00:00Z' },
    { ...event, id: '' },
    { ...event, surprise: 1 },
    'not an event',
    null,
  ];
  requests.push({ label: 'all-bad batch', method: 'POST', path: '/v1/events', body: json({ events: badEvents }) });
  for (const [index, bad] of badEvents.entries()) requests.push({ label: `bad event ${index}`, method: 'POST', path: '/v1/events', body: json({ events: [bad, bad] }) });
  requests.push({ label: '1001 events', method: 'POST', path: '/v1/events', body: json({ events: Array.from({ length: 1001 }, (_, i) => ({ ...event, id: `b${i}` })) }) });
  requests.push({ label: 'empty batch', method: 'POST', path: '/v1/events', body: json({ events: [] }) });
  requests.push({ label: 'events not an array', method: 'POST', path: '/v1/events', body: json({ events: { 0: event } }) });
  requests.push({ label: 'events over 5 mb', method: 'POST', path: '/v1/events', body: json({ events: [{ ...event, properties: { pad: 'z'.repeat(5_300_000) } }] }) });

  for (const route of routes.filter((r) => (r.method === 'GET' || r.method === 'DELETE') && r.path.includes(':'))) {
    for (const id of BAD_IDS) requests.push({ label: `bad id ${id.slice(0, 30)}`, method: route.method, path: withId(route.path, id) });
  }
  const badQueries = ['limit=NaN', 'limit=1e400', 'limit=0x10', 'limit=1e1', 'limit=%205', 'limit=5%20', 'limit=', 'limit=-1', 'limit=0', 'limit=201', 'limit=1.5', 'limit=1&limit=2', 'limit=%00', 'status=bogus', 'status=%00', 'customer_id=xyz', 'subscription_id=1', 'surprise=1', 'role=root'];
  for (const path of ['/v1/invoices', '/v1/api-keys']) {
    for (const query of badQueries) {
      if (path === '/v1/api-keys' && /status|customer_id|subscription_id/.test(query)) continue;
      if (path === '/v1/invoices' && query === 'role=root') continue;
      if (path === '/v1/api-keys' && query === 'limit=201') continue; // within the api-keys bound
      requests.push({ label: `query ${query}`, method: 'GET', path: `${path}?${query}` });
    }
  }
  return requests;
}

test('a thousand and more malformed requests: each a 4xx problem with a code, nothing written, no workflow touched', async () => {
  const app = createApp({ db, temporal: new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) }), log: () => undefined });
  const requests = generate(listRoutes(app));
  expect(requests.length).toBeGreaterThanOrEqual(1_000);

  const before = await fingerprint();
  const failures: string[] = [];
  let index = 0;
  // A few at a time, as clients would send them; every other request also carries an Idempotency-Key.
  const worker = async (): Promise<void> => {
    while (index < requests.length) {
      const request = requests[index];
      const withKey = index % 2 === 0;
      index += 1;
      const headers: Record<string, string> = {
        ...admin.headers,
        ...(request.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(withKey ? { 'idempotency-key': randomUUID() } : {}),
        ...request.headers,
      };
      let response: Response;
      let text: string;
      try {
        response = await fetch(`${api.http.baseUrl}${request.path}`, {
          method: request.method,
          headers: Object.fromEntries(Object.entries(headers).filter(([, value]) => value !== '')),
          body: request.body,
          signal: AbortSignal.timeout(10_000),
        });
        text = await response.text();
      } catch (error) {
        failures.push(`${request.method} ${request.path.slice(0, 80)} [${request.label}] -> ${String(error)}`);
        continue;
      }
      let code: unknown;
      try {
        code = JSON.parse(text).code;
      } catch {
        code = undefined;
      }
      const problemJson = (response.headers.get('content-type') ?? '').includes('application/problem+json');
      if (response.status < 400 || response.status >= 500 || typeof code !== 'string' || !problemJson) {
        failures.push(`${request.method} ${request.path.slice(0, 80)} [${request.label}] -> ${response.status} ${text.slice(0, 200)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));

  expect(failures).toEqual([]);
  expect(await fingerprint()).toEqual(before);
  expect(api.temporalCalls).toEqual([]);
  expect(api.logs.filter((entry) => entry.level === 'error')).toEqual([]);
  expect(api.logs.length).toBe(requests.length);
});
