/**
 * A cost table's effective_from is checked as RFC 3339, which lets through instants outside years 0001-9999 in UTC:
 * "0000-01-01T00:00:00Z" (Postgres stores 1 BC, reads back year 0), "0000-01-01T00:00:00+01:00" (year -1) and
 * "9999-12-31T23:59:59-14:00" (year 10000). They were stored with 201, and then costing the metric sent the table's
 * instant back to Postgres as toISOString wrote it ("0000-...", "-000001-...", "+010000-..."), which Postgres refuses:
 * every usage read of the metric failed (the period close of each subscription charging it, previews, margins).
 * Refused now with 422 invalid_cost_table and nothing stored; the edges that round-trip still work.
 */
import type { Database } from '../../store/database';
import type { MetricRow } from '../../store/catalog';
import { costedUsage, listCostTableRows, toCostTable } from '../../store/cost-tables';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  // The contract check is off: before the fix the API answered these with an effective_from that is not RFC 3339.
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers, checkContract: false });
  expect((await api.http.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'e.calls', aggregation: 'count' })).status).toBe(201);
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test.each(['0000-01-01T00:00:00Z', '0000-01-01T00:00:00+01:00', '9999-12-31T23:59:59-14:00'])('effective_from %s is refused, nothing stored', async (at) => {
  const metric = `m${at.replace(/[^0-9]/g, '')}`;
  expect((await api.http.call('POST', '/v1/metrics', { code: metric, name: metric, event_type: `e.${metric}`, aggregation: 'count' })).status).toBe(201);
  const response = await api.http.call('POST', `/v1/metrics/${metric}/cost-tables`, { currency: 'USD', effective_from: at, costs: [{ match: {}, unit_cost: '0.10' }] });
  const stored = await db('metric_cost_tables').where({ metric_code: metric });
  expect({ status: response.status, code: response.json?.code, stored: stored.length }).toEqual({ status: 422, code: 'invalid_cost_table', stored: 0 });
});

test('the edges that round-trip are stored, and the metric is costed with them', async () => {
  for (const at of ['0001-01-01T00:00:00Z', '9999-12-31T23:59:59Z']) {
    expect((await api.http.call('POST', '/v1/metrics/calls/cost-tables', { currency: 'USD', effective_from: at, costs: [{ match: {}, unit_cost: '0.10' }] })).status).toBe(201);
  }
  const [metric] = await db<MetricRow>('billable_metrics').where({ code: 'calls' });
  const customer = await insertCustomer(db);
  const tables = (await listCostTableRows(db, 'calls')).map(toCostTable);
  const costed = await costedUsage(db, metric, tables, { kind: 'unclaimed', customerId: customer.id, from: new Date('2031-01-01T00:00:00Z'), to: new Date('2031-02-01T00:00:00Z') });
  expect(costed.costs).toEqual([]);
});
