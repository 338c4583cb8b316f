/**
 * The split of usage by cost table (store/cost-tables.ts costedUsage) is costed with the tables its caller read
 * (usageForCharges reads them first, then aggregates). Finance may post a table at any moment, also one dated in
 * the past, and under READ COMMITTED a table committed between those two reads was seen by the split's SQL but not
 * by the index that prices it: the events after its instant were labelled with the new table's date and costed at
 * the old table's unit cost, and the closure recorded that mix for good (cost_plus invoice, margins). The split must
 * use exactly the tables it is given. Real Postgres.
 */
import { CostTableIndex, type CostTable } from '../../domain/cost-tables';
import type { Database } from '../../store/database';
import { createMetric, type MetricRow } from '../../store/catalog';
import { costedUsage, insertCostTable, toCostTable } from '../../store/cost-tables';
import { insertUsageEvents } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

test('usage is split by the cost tables the caller costs it with, not by one committed meanwhile', async () => {
  const metric = (await createMetric(db, { code: 'race_tokens', name: 'Tokens', eventType: 'race.usage', aggregation: 'sum', property: 'tokens', filters: {}, unitCost: null, allowNegative: false, groupBy: ['model'] })) as MetricRow;
  const customer = await insertCustomer(db, { external_id: 'race-costs' });
  await insertUsageEvents(db, [
    { customerId: customer.id, eventId: 'r1', eventType: 'race.usage', occurredAt: new Date('2034-03-10T00:00:00Z'), properties: { model: 'large', tokens: 1000 } },
    { customerId: customer.id, eventId: 'r2', eventType: 'race.usage', occurredAt: new Date('2034-03-20T00:00:00Z'), properties: { model: 'large', tokens: 3000 } },
  ]);
  const march1 = await insertCostTable(db, { metricCode: metric.code, currency: 'USD', effectiveFrom: new Date('2034-03-01T00:00:00Z'), entries: [{ match: {}, unitCost: '0.00001' }], createdBy: 'test' });
  // The caller read the tables now: only March 1's.
  const known: CostTable[] = [toCostTable(march1.row)];
  // Then finance posts a cheaper table from March 15 (committed before the split's query runs).
  await insertCostTable(db, { metricCode: metric.code, currency: 'USD', effectiveFrom: new Date('2034-03-15T00:00:00Z'), entries: [{ match: {}, unitCost: '0.000002' }], createdBy: 'test' });

  const split = await costedUsage(db, metric, known, { kind: 'unclaimed', customerId: customer.id, from: new Date('2034-03-01T00:00:00Z'), to: new Date('2034-04-01T00:00:00Z') });
  // Each segment's unit cost is the one of the table it names: the March 1 table costs all 4,000 tokens.
  const index = new CostTableIndex(known, ['model']);
  for (const segment of split.byCombination.get('model=large') ?? []) {
    expect(segment.unitCost).toBe(index.unitCost(segment.effectiveFrom, { model: 'large' }));
    expect(known.map((table) => table.effectiveFrom)).toContain(segment.effectiveFrom);
  }
  expect(split.costs).toEqual([{ effectiveFrom: '2034-03-01T00:00:00.000Z', unitCost: '0.00001', quantity: '4000' }]);
});
