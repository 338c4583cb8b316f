/**
 * A cost table on a metric whose usage cannot be split into per-event units (max, latest, unique_count, the
 * prorated aggregations, a sum that allows negative values) was stored with 201, and then never used: usage reads
 * skip it (store/usage.ts isCostable), cost_plus charges on such a metric are refused, and margins silently cost the
 * metric at its flat unit_cost instead. Finance believed the metric costed by the table. Refused now with
 * 422 invalid_cost_table, nothing written.
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
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const metrics = [
  { code: 'peak_gpus', aggregation: 'max', property: 'gpus' },
  { code: 'last_gb', aggregation: 'latest', property: 'gb' },
  { code: 'users', aggregation: 'unique_count', property: 'user' },
  { code: 'seats', aggregation: 'prorated_sum', property: 'delta' },
  { code: 'net_tokens', aggregation: 'sum', property: 'tokens', allow_negative: true },
];

test.each(metrics)('a cost table on a $aggregation metric ($code) is refused and nothing is stored', async (metric) => {
  const created = await api.http.call('POST', '/v1/metrics', { name: metric.code, event_type: `e.${metric.code}`, ...metric });
  expect(created.status).toBe(201);
  const response = await api.http.call('POST', `/v1/metrics/${metric.code}/cost-tables`, { currency: 'USD', effective_from: '2031-01-01T00:00:00Z', costs: [{ match: {}, unit_cost: '0.10' }] });
  const stored = await db('metric_cost_tables').where({ metric_code: metric.code });
  expect({ status: response.status, code: response.json?.code, stored: stored.length }).toEqual({ status: 422, code: 'invalid_cost_table', stored: 0 });
});

test('a cost table on a count metric is still stored', async () => {
  expect((await api.http.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'e.calls', aggregation: 'count' })).status).toBe(201);
  const response = await api.http.call('POST', '/v1/metrics/calls/cost-tables', { currency: 'USD', effective_from: '2031-01-01T00:00:00Z', costs: [{ match: {}, unit_cost: '0.10' }] });
  expect(response.status).toBe(201);
});
