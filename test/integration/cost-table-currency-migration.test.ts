/**
 * Migration 0700 gives every stored cost table a currency without guessing: the one currency of the plans that
 * charge its metric (their usage is what the table costed), else the operator's word (COST_TABLE_CURRENCIES); with
 * neither, it refuses and names the metrics, and nothing changes. Rolled back to 0670 with tables in place, then
 * forward again.
 */
import type { Database } from '../../store/database';
import { migrationSource } from '../../migrations';
import { createTestDatabase } from '../support/database';
import { insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  delete process.env.COST_TABLE_CURRENCIES;
  await db?.destroy();
});

const MIGRATION = '0700_add_metric_cost_tables_currency';
const MARCH_1 = new Date('2033-03-01T00:00:00Z');

test('tables take their plans\' one currency; disagreeing or unused metrics are refused until the operator names theirs', async () => {
  const metric = (code: string) => db('billable_metrics').insert({ code, name: code, event_type: `${code}.used`, aggregation: 'count' });
  for (const code of ['mx_usd_only', 'mx_mixed', 'mx_unused']) await metric(code);
  const charge = (metricCode: string, model: string) => ({ metricCode, price: model === 'cost_plus' ? { model, markup: '0.1' } : { model, unitPrice: '0.01' } });
  await insertPlan(db, { code: 'mx-usd-a', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', charges: [charge('mx_usd_only', 'cost_plus'), charge('mx_mixed', 'per_unit')] as never });
  await insertPlan(db, { code: 'mx-usd-b', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', charges: [charge('mx_usd_only', 'per_unit')] as never });
  await insertPlan(db, { code: 'mx-eur', currency: 'EUR', billing_interval: 'P1M', flat_fee: '0', charges: [charge('mx_mixed', 'cost_plus')] as never });

  await db.migrate.down({ migrationSource, name: MIGRATION });
  expect(await db.schema.hasColumn('metric_cost_tables', 'currency')).toBe(false);
  const entries = JSON.stringify([{ match: {}, unitCost: '0.5' }]);
  for (const code of ['mx_usd_only', 'mx_mixed', 'mx_unused']) await db('metric_cost_tables').insert({ metric_code: code, effective_from: MARCH_1, entries, created_by: 'test' });

  // mx_mixed is charged in USD and in EUR, mx_unused by no plan: which currency their figures are in is unknown.
  delete process.env.COST_TABLE_CURRENCIES;
  await expect(db.migrate.latest({ migrationSource })).rejects.toThrow(
    'the currency of the cost tables of mx_mixed (charged by plans in EUR, USD); mx_unused (charged by no plan) cannot be told from the plans',
  );
  // Refused as a whole: no table got a currency, the column is not there.
  expect(await db.schema.hasColumn('metric_cost_tables', 'currency')).toBe(false);

  process.env.COST_TABLE_CURRENCIES = 'mx_mixed=EUR,mx_unused=USD';
  expect((await db.migrate.latest({ migrationSource }))[1]).toEqual([MIGRATION]);
  expect(await db('metric_cost_tables').whereIn('metric_code', ['mx_usd_only', 'mx_mixed', 'mx_unused']).orderBy('metric_code').select('metric_code', 'currency')).toEqual([
    { metric_code: 'mx_mixed', currency: 'EUR' },
    { metric_code: 'mx_unused', currency: 'USD' },
    { metric_code: 'mx_usd_only', currency: 'USD' },
  ]);
  // Each currency is its own timeline: a USD table from the instant of mx_mixed's EUR one is another row.
  await db('metric_cost_tables').insert({ metric_code: 'mx_mixed', currency: 'USD', effective_from: MARCH_1, entries, created_by: 'test' });
  await expect(db('metric_cost_tables').insert({ metric_code: 'mx_mixed', currency: 'USD', effective_from: MARCH_1, entries, created_by: 'test' })).rejects.toThrow(/metric_cost_tables_metric_code_currency_effective_from_unique/);
});
