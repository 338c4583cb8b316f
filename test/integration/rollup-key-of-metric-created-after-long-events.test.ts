/**
 * Remaining hole of the ingestion bound on indexed values (indexed_value_too_long, domain/usage-events.ts): it can
 * only check the metrics that exist when the event arrives. An event of a type no grouped metric reads yet is
 * stored with 900-character properties; a metric grouping by them is created afterwards; the first read of the
 * customer's running totals for the period seeded them from the raw events and failed (54000: index row size
 * 3672 exceeds btree version 4 maximum 2704 for index "usage_rollups_pkey"), as did every later one: the usage
 * page, thresholds and period close of that customer. The same for a unique_count metric created after long
 * counted values (usage_rollup_distinct_values' key).
 *
 * Fixed in store/rollups.ts and migration 0650: the totals are unique by a sha256 of the key (and of the counted
 * value), computed by the database; the full key stays a plain column, read back for the per-combination groups.
 */
import { randomBytes } from 'node:crypto';
import type { Database } from '../../store/database';
import type { MetricRow } from '../../store/catalog';
import { insertUsageEvents } from '../../store/usage';
import { aggregateMetricGroups } from '../../store/dimension-usage';
import { rollupUsage } from '../../store/rollups';
import { rateDimensionalUsage, type DimensionalCharge } from '../../domain/dimensions';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

const value = (): string => randomBytes(450).toString('hex'); // 900 characters
const MARCH = { from: new Date('2031-03-01T00:00:00Z'), to: new Date('2031-04-01T00:00:00Z') };
const at = (day: number): Date => new Date(Date.UTC(2031, 2, day));

test('a grouped metric created after long-valued events of its type: its running totals can be seeded', async () => {
  const customer = await insertCustomer(db);
  // Accepted at ingestion: no metric grouped r.call events then (the ingestion bound had nothing to check).
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'old', eventType: 'r.call', occurredAt: new Date('2031-03-05T00:00:00Z'), properties: { a: value(), b: value(), c: value(), d: value() } }]);
  const [metric] = await db<MetricRow>('billable_metrics')
    .insert({ code: 'r_by_all', name: 'Calls by all', event_type: 'r.call', aggregation: 'count', property: null, group_by: JSON.stringify(['a', 'b', 'c', 'd']) as never })
    .returning('*');
  const read = await rollupUsage(db, { customerId: customer.id, ...MARCH }, [metric]).then(
    () => 'ok',
    (error: Error) => error.message.replace(/^[\s\S]* - /, ''),
  );
  // Before: "index row size 3672 exceeds btree version 4 maximum 2704 for index "usage_rollups_pkey"".
  expect(read).toBe('ok');
});

test('a long combination is totalled under its full key, as the raw events aggregate it, and rated at its price', async () => {
  const customer = await insertCustomer(db);
  const long = { a: value(), b: value(), c: value(), d: value() };
  const other = { a: value(), b: value(), c: value(), d: value() };
  // Stored while no metric reads s.call events (the edge had nothing to bound).
  await insertUsageEvents(db, [
    { customerId: customer.id, eventId: 'long-1', eventType: 's.call', occurredAt: at(2), properties: { tokens: 2, ...long } },
    { customerId: customer.id, eventId: 'long-2', eventType: 's.call', occurredAt: at(3), properties: { tokens: 3, ...long } },
    { customerId: customer.id, eventId: 'other-1', eventType: 's.call', occurredAt: at(4), properties: { tokens: 7, ...other } },
    { customerId: customer.id, eventId: 'short-1', eventType: 's.call', occurredAt: at(5), properties: { tokens: 1, a: 'x' } },
  ]);
  const [metric] = await db<MetricRow>('billable_metrics')
    .insert({ code: 's_tokens', name: 'Tokens by all', event_type: 's.call', aggregation: 'sum', property: 'tokens', group_by: JSON.stringify(['a', 'b', 'c', 'd']) as never })
    .returning('*');
  const window = { customerId: customer.id, ...MARCH };
  const seeded = (await rollupUsage(db, window, [metric])).get('s_tokens')!;
  expect(seeded.quantity).toBe('13');

  // Seeded: one more event of the long combination folds into its row (ON CONFLICT on the digest), not a second row.
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'long-3', eventType: 's.call', occurredAt: at(6), properties: { tokens: 4, ...long } }]);
  const usage = (await rollupUsage(db, window, [metric])).get('s_tokens')!;
  const sorted = <T extends { quantity: string }>(groups: readonly T[]) => [...groups].sort((x, y) => Number(x.quantity) - Number(y.quantity));
  expect({ quantity: usage.quantity, eventCount: usage.eventCount }).toEqual({ quantity: '17', eventCount: 5 });
  expect(sorted(usage.groups!)).toEqual([
    { dimensions: { a: 'x' }, quantity: '1', eventCount: 1 },
    { dimensions: other, quantity: '7', eventCount: 1 },
    { dimensions: long, quantity: '9', eventCount: 3 },
  ]);
  // The same groups as the raw-event path (what the period close bills).
  const raw = await aggregateMetricGroups(db, metric, { kind: 'unclaimed', ...window }, false);
  expect(sorted(raw).map((group) => ({ dimensions: group.dimensions, quantity: group.quantity }))).toEqual(
    sorted(usage.groups!).map((group) => ({ dimensions: group.dimensions, quantity: group.quantity })),
  );
  expect(await db('usage_rollups').where({ metric_id: metric.id }).count<{ count: string }[]>('* as count')).toEqual([{ count: '4' }]);

  // Rated: the long combination at its own price (1.00 a token), the rest at the default (0.10 a token).
  const charge: DimensionalCharge = {
    metricCode: 's_tokens',
    price: { model: 'per_unit', unitPrice: '0.10' },
    dimensions: { groupBy: ['a', 'b', 'c', 'd'], prices: [{ match: { a: long.a }, price: { model: 'per_unit', unitPrice: '1.00' } }], defaultPrice: { model: 'per_unit', unitPrice: '0.10' }, unmatched: 'list' },
  };
  const rated = rateDimensionalUsage({ currency: 'USD', charges: [charge], usage: [{ metricCode: 's_tokens', quantity: usage.quantity, groups: usage.groups }] });
  // 9 x 1.00 + 7 x 0.10 + 1 x 0.10 = 9.80
  expect(rated.usageTotal).toBe('9.80');
});

test('a grouped unique_count metric created after long values: its distinct sets are seeded and counted per combination', async () => {
  const customer = await insertCustomer(db);
  // The combination key (about 1,800 bytes) fits a btree entry on its own, not with a 1,000-character counted value.
  const combination = { a: value(), b: value() };
  const [first, second] = [randomBytes(500).toString('hex'), randomBytes(500).toString('hex')];
  await insertUsageEvents(db, [
    { customerId: customer.id, eventId: 'u-1', eventType: 'u.seen', occurredAt: at(2), properties: { user: first, ...combination } },
    { customerId: customer.id, eventId: 'u-2', eventType: 'u.seen', occurredAt: at(3), properties: { user: second, ...combination } },
    { customerId: customer.id, eventId: 'u-3', eventType: 'u.seen', occurredAt: at(4), properties: { user: first, ...combination } },
  ]);
  const [metric] = await db<MetricRow>('billable_metrics')
    .insert({ code: 'u_users', name: 'Users', event_type: 'u.seen', aggregation: 'unique_count', property: 'user', group_by: JSON.stringify(['a', 'b']) as never })
    .returning('*');
  const window = { customerId: customer.id, ...MARCH };
  const read = await rollupUsage(db, window, [metric]).then(
    (usage) => usage.get('u_users')!.groups!.map((group) => [group.dimensions, group.quantity]),
    (error: Error) => error.message.replace(/^[\s\S]* - /, ''),
  );
  // Before: "index row size 2864 exceeds btree version 4 maximum 2704 for index "usage_rollup_distinct_values_pkey"".
  expect(read).toEqual([[combination, '2']]);
  // A value seen already counts once more in nothing; a new one counts.
  await insertUsageEvents(db, [
    { customerId: customer.id, eventId: 'u-4', eventType: 'u.seen', occurredAt: at(5), properties: { user: second, ...combination } },
    { customerId: customer.id, eventId: 'u-5', eventType: 'u.seen', occurredAt: at(5), properties: { user: 'third', ...combination } },
  ]);
  const usage = (await rollupUsage(db, window, [metric])).get('u_users')!;
  expect([usage.quantity, usage.groups!.map((group) => group.quantity)]).toEqual(['3', ['3']]);
});
