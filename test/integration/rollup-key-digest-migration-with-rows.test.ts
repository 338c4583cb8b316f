/**
 * Migration 0650 (the running totals unique by a sha256 of their key, store/rollups.ts ROLLUP_KEY_DIGEST) on tables
 * that already hold totals: rolled back to 0640 with rows in place, then forward again. Every row keeps its values
 * and gets the digest new writes compute (so the next event folds into it, not beside it), the primary keys are
 * the digests, and a metric seeded before seeding wrote its total row gets that row at zero.
 */
import { createHash } from 'node:crypto';
import type { Database } from '../../store/database';
import type { MetricRow } from '../../store/catalog';
import { migrationSource } from '../../migrations';
import { insertUsageEvents } from '../../store/usage';
import { rollupUsage } from '../../store/rollups';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

const MIGRATION = '0650_key_usage_rollups_by_digest';
const MARCH = { from: new Date('2032-03-01T00:00:00Z'), to: new Date('2032-04-01T00:00:00Z') };
const at = (day: number): Date => new Date(Date.UTC(2032, 2, day));
const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

const primaryKey = async (table: string): Promise<string> =>
  (await db.raw<{ rows: { definition: string }[] }>(`SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint WHERE conname = ?`, [`${table}_pkey`])).rows[0].definition;

test('rolled back to 0640 with totals stored, then forward: the rows keep their totals, get their digests and take new events', async () => {
  const customer = await insertCustomer(db);
  const metric = async (row: Partial<MetricRow>): Promise<MetricRow> => (await db<MetricRow>('billable_metrics').insert(row as never).returning('*'))[0];
  const tokens = await metric({ code: 'm_tokens', name: 'Tokens', event_type: 'm.call', aggregation: 'sum', property: 'tokens', group_by: JSON.stringify(['model']) as never });
  const users = await metric({ code: 'm_users', name: 'Users', event_type: 'm.call', aggregation: 'unique_count', property: 'user', group_by: JSON.stringify(['model']) as never });
  const quiet = await metric({ code: 'm_quiet', name: 'Quiet', event_type: 'm.never', aggregation: 'count', property: null });
  const window = { customerId: customer.id, ...MARCH };
  await insertUsageEvents(db, [
    { customerId: customer.id, eventId: 'e-1', eventType: 'm.call', occurredAt: at(2), properties: { tokens: 5, user: 'ana', model: 'large' } },
    { customerId: customer.id, eventId: 'e-2', eventType: 'm.call', occurredAt: at(3), properties: { tokens: 2, user: 'bo', model: 'small' } },
    { customerId: customer.id, eventId: 'e-3', eventType: 'm.call', occurredAt: at(4), properties: { tokens: 1, user: 'ana', model: 'large' } },
  ]);
  const before = await rollupUsage(db, window, [tokens, users, quiet]);

  // Back to 0640 with these rows in place; the quiet metric's total row goes, as a window seeded before seeding
  // wrote that row lacks it.
  await db.migrate.down({ migrationSource, name: MIGRATION });
  expect(await db.schema.hasColumn('usage_rollups', 'dimension_digest')).toBe(false);
  expect(await primaryKey('usage_rollups')).toBe('PRIMARY KEY (window_id, metric_id, dimension_key)');
  await db('usage_rollups').where({ metric_id: quiet.id }).delete();
  const rowsAt0640 = await db('usage_rollups').orderBy(['metric_id', 'dimension_key']).select('window_id', 'metric_id', 'dimension_key', 'event_count', 'value_count', 'value_sum', 'distinct_count');
  const distinctAt0640 = await db('usage_rollup_distinct_values').orderBy(['metric_id', 'dimension_key', 'value']).select('window_id', 'metric_id', 'dimension_key', 'value');
  expect(rowsAt0640).toHaveLength(6); // tokens and users: the total, large and small each
  expect(distinctAt0640).toHaveLength(4); // users: ana and bo in the total and in their combinations

  const applied = (await db.migrate.latest({ migrationSource }))[1] as string[];
  expect(applied).toEqual([MIGRATION]);
  expect(await primaryKey('usage_rollups')).toBe('PRIMARY KEY (window_id, metric_id, dimension_digest)');
  expect(await primaryKey('usage_rollup_distinct_values')).toBe('PRIMARY KEY (window_id, metric_id, dimension_digest, value_digest)');

  // Same rows, same totals, each with the digest of its key (computed by the migration for rows already there).
  const migrated = await db('usage_rollups').orderBy(['metric_id', 'dimension_key']).select('window_id', 'metric_id', 'dimension_key', 'dimension_digest', 'event_count', 'value_count', 'value_sum', 'distinct_count');
  expect(migrated.filter((row) => row.metric_id !== quiet.id).map(({ dimension_digest: _, ...row }) => row)).toEqual(rowsAt0640);
  for (const row of migrated) expect(row.dimension_digest).toEqual(sha256(row.dimension_key));
  const migratedDistinct = await db('usage_rollup_distinct_values').orderBy(['metric_id', 'dimension_key', 'value']).select('window_id', 'metric_id', 'dimension_key', 'value', 'dimension_digest', 'value_digest');
  expect(migratedDistinct.map(({ window_id, metric_id, dimension_key, value }) => ({ window_id, metric_id, dimension_key, value }))).toEqual(distinctAt0640);
  for (const row of migratedDistinct) expect([row.dimension_digest, row.value_digest]).toEqual([sha256(row.dimension_key), sha256(row.value)]);
  // The quiet metric's total row is back, at zero (the row a hard-limit check locks, store/entitlements.ts).
  expect(migrated.filter((row) => row.metric_id === quiet.id).map((row) => [row.dimension_key, row.event_count])).toEqual([['', '0']]);
  expect(await rollupUsage(db, window, [tokens, users, quiet])).toEqual(before);

  // New events fold into the migrated rows (the conflict is found on the digest): no second row, totals add up.
  await insertUsageEvents(db, [
    { customerId: customer.id, eventId: 'e-4', eventType: 'm.call', occurredAt: at(5), properties: { tokens: 4, user: 'bo', model: 'large' } },
    { customerId: customer.id, eventId: 'e-5', eventType: 'm.call', occurredAt: at(6), properties: { tokens: 3, user: 'bo', model: 'small' } },
  ]);
  expect(await db('usage_rollups').count<{ count: string }[]>('* as count')).toEqual([{ count: '7' }]);
  const after = await rollupUsage(db, window, [tokens, users]);
  const groups = (code: string) => Object.fromEntries(after.get(code)!.groups!.map((group) => [group.dimensions.model, group.quantity]));
  expect([after.get('m_tokens')!.quantity, groups('m_tokens')]).toEqual(['15', { large: '10', small: '5' }]);
  expect([after.get('m_users')!.quantity, groups('m_users')]).toEqual(['2', { large: '2', small: '1' }]);
});
