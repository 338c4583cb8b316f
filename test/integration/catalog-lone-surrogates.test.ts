/**
 * JSON may carry a lone UTF-16 surrogate ("\ud800"), which has no UTF-8 form: Postgres' jsonb refuses it, a text
 * column silently stores U+FFFD instead, and encodeURIComponent (dimension keys) throws. In the catalog that gave
 * 500 internal_error for a dimension match or a cost table entry (URIError), a charge's display name or a metric's
 * name (invalid input syntax for type json), and a plan stored under an altered name. Such text is refused with
 * 422 validation_failed and nothing is written. So is a control character or line break in a name (it reached the
 * Subject header of the customer's emails). Over real HTTP and Postgres, no Temporal.
 */
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  expect((await api.http.call('POST', '/v1/metrics', { code: 'tokens', name: 'Tokens', event_type: 'llm', aggregation: 'sum', property: 'tokens', group_by: ['model'] })).status).toBe(201);
});

afterAll(async () => {
  await api.close();
  await db.destroy();
});

const plan = (code: string, fields: Record<string, unknown>) => ({ code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '0', ...fields });
const perToken = { model: 'per_unit', unitPrice: '0.001' };

test.each([
  ['dimension-match', plan('p1', { charges: [{ metric_code: 'tokens', dimensions: { prices: [{ match: { model: 'x\ud800' }, price: perToken }] } }] }), 'charges.0.dimensions.prices.0.match.model'],
  ['display-name', plan('p2', { charges: [{ metric_code: 'tokens', display_name: 'Tokens \udc00', price: perToken }] }), 'charges.0.display_name'],
  ['plan-name', plan('p3', { name: 'Pro \ud83d' }), 'name'],
])('a plan with a lone surrogate in its %s is refused with 422, nothing stored', async (_label, body, path) => {
  const refused = await api.http.call('POST', '/v1/plans', body);
  expect([refused.status, refused.type.split(';')[0], refused.json.code]).toEqual([422, 'application/problem+json', 'validation_failed']);
  expect(refused.json.errors).toEqual([expect.objectContaining({ path })]);
  expect(await db('plans').where({ code: body.code })).toEqual([]);
});

test.each([
  ['name', { code: 'm1', name: 'Calls \ud800', event_type: 'call', aggregation: 'count' }, 'name'],
  ['event type', { code: 'm2', name: 'Calls', event_type: 'call\udfff', aggregation: 'count' }, 'event_type'],
  ['filter value', { code: 'm3', name: 'Calls', event_type: 'call', aggregation: 'count', filters: { region: 'eu\ud800' } }, 'filters.region'],
])('a metric with a lone surrogate in its %s is refused with 422, nothing stored', async (_label, body, path) => {
  const refused = await api.http.call('POST', '/v1/metrics', body);
  expect([refused.status, refused.type.split(';')[0], refused.json.code]).toEqual([422, 'application/problem+json', 'validation_failed']);
  expect(refused.json.errors).toEqual([expect.objectContaining({ path })]);
  expect(await db('billable_metrics').where({ code: body.code })).toEqual([]);
});

test('a cost table with a lone surrogate in a match is refused with 422, nothing stored', async () => {
  const finance = (await createTestApiKey(db, 'finance')).headers;
  const refused = await api.http.call('POST', '/v1/metrics/tokens/cost-tables', { currency: 'USD', effective_from: '2031-01-01T00:00:00Z', costs: [{ match: { model: '\ud800' }, unit_cost: '0.001' }] }, finance);
  expect([refused.status, refused.type.split(';')[0], refused.json.code]).toEqual([422, 'application/problem+json', 'validation_failed']);
  expect(refused.json.errors).toEqual([expect.objectContaining({ path: 'costs.0.match.model' })]);
  expect(await db('metric_cost_tables')).toEqual([]);
});

/** Names are one line: a newline in a plan name reached the Subject header of the customer's emails. */
test.each([
  ['/v1/plans', 'plan name', plan('p4', { name: 'Pro\nBcc: victim@example.com' }), 'name', 'plans'],
  ['/v1/plans', 'charge display name', plan('p5', { charges: [{ metric_code: 'tokens', display_name: 'Tokens\r', price: perToken }] }), 'charges.0.display_name', 'plans'],
  ['/v1/metrics', 'metric name', { code: 'm4', name: 'Calls\u0085', event_type: 'call', aggregation: 'count' }, 'name', 'billable_metrics'],
  ['/v1/customers', 'customer name', { external_id: 'ada', name: 'Ada\u2028Lovelace', currency: 'USD' }, 'name', 'customers'],
])('%s: a %s with a control character or line break is refused with 422, nothing stored', async (route, _label, body, path, table) => {
  const refused = await api.http.call('POST', route, body);
  expect([refused.status, refused.type.split(';')[0], refused.json.code]).toEqual([422, 'application/problem+json', 'validation_failed']);
  expect(refused.json.errors).toEqual([expect.objectContaining({ path })]);
  expect(await db(table).where('code' in body ? { code: body.code } : { external_id: (body as { external_id: string }).external_id })).toEqual([]);
});

test('text with emoji and other well-formed pairs is still published', async () => {
  expect((await api.http.call('POST', '/v1/plans', plan('emoji', { name: 'Pro 🚀', charges: [{ metric_code: 'tokens', display_name: 'Tökens 😀', dimensions: { prices: [{ match: { model: 'größe-😀' }, price: perToken }] } }] }))).status).toBe(201);
});
