/**
 * A cost table is never edited: the very same body posted again answers 200 (a replay), a different one for the same
 * instant 409 cost_table_exists (docs/pricing.md "Cost tables"). The replay check compared each match as JSON text,
 * but jsonb stores an object's keys in its own order (shorter keys first), so the same body with a match written
 * `{"direction": ..., "model": ...}` was answered 409 on its retry. Matches now compare as sets of dimension values.
 * Over real HTTP and Postgres, no Temporal.
 */
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'finance')).headers });
  const admin = (await createTestApiKey(db, 'admin')).headers;
  expect((await api.http.call('POST', '/v1/metrics', { code: 'tokens', name: 'Tokens', event_type: 'llm', aggregation: 'sum', property: 'tokens', group_by: ['model', 'direction'] }, admin)).status).toBe(201);
});

afterAll(async () => {
  await api.close();
  await db.destroy();
});

const table = (outputCost: string) => ({
  currency: 'USD',
  effective_from: '2031-01-01T00:00:00Z',
  costs: [
    { match: {}, unit_cost: '0.000002' },
    { match: { direction: 'output', model: 'large' }, unit_cost: outputCost },
  ],
});

test('the same cost table posted again is a replay (200), whatever the order of its match keys; a different one is 409', async () => {
  expect((await api.http.call('POST', '/v1/metrics/tokens/cost-tables', table('0.000024'))).status).toBe(201);
  const replay = await api.http.call('POST', '/v1/metrics/tokens/cost-tables', table('0.000024'));
  expect([replay.status, replay.json.code]).toEqual([200, undefined]);
  const conflict = await api.http.call('POST', '/v1/metrics/tokens/cost-tables', table('0.000025'));
  expect([conflict.status, conflict.json.code]).toEqual([409, 'cost_table_exists']);
  expect(await db('metric_cost_tables').count('* as n')).toEqual([{ n: '1' }]);
});
