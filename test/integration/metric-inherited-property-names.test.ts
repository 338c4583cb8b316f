/**
 * Ingestion reads an event's property as `properties[name]`, and every JavaScript object answers names like
 * "constructor" or "__proto__" even when the event does not carry them (Postgres, which aggregates the close, reads
 * nothing there). A metric on such a name was accepted and then misbehaved: a unique_count on "constructor" accepted
 * an event without the property (a missing property is refused for any other name) and counted nothing for it; a sum
 * on "__proto__" could never be fed at all (request bodies may not carry a "__proto__" key), so its charge billed
 * nothing while every event was refused as non_numeric_property. These names are refused when the metric is created,
 * nothing stored. Over real HTTP and Postgres, no Temporal.
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
  await api.close();
  await db.destroy();
});

test.each([
  ['unique_count on constructor', { code: 'm1', aggregation: 'unique_count', property: 'constructor' }, 'property'],
  ['sum on __proto__', { code: 'm2', aggregation: 'sum', property: '__proto__' }, 'property'],
  ['sum on toString', { code: 'm3', aggregation: 'sum', property: 'toString' }, 'property'],
  ['group_by hasOwnProperty', { code: 'm4', aggregation: 'count', group_by: ['model', 'hasOwnProperty'] }, 'group_by.1'],
])('a metric %s is refused with 422 validation_failed, nothing stored', async (_label, fields, path) => {
  const refused = await api.http.call('POST', '/v1/metrics', { name: 'M', event_type: 'e', ...fields });
  expect([refused.status, refused.type.split(';')[0], refused.json.code]).toEqual([422, 'application/problem+json', 'validation_failed']);
  expect(refused.json.errors).toEqual([expect.objectContaining({ path })]);
  expect(await db('billable_metrics').where({ code: fields.code })).toEqual([]);
});

test('ordinary names, including ones that merely contain those words, are accepted', async () => {
  expect((await api.http.call('POST', '/v1/metrics', { code: 'ok', name: 'Ok', event_type: 'e', aggregation: 'sum', property: 'constructor_id', group_by: ['proto', 'value_of'] })).status).toBe(201);
});
