/**
 * A transaction has one connection: the billing path must never hand it a query while another is in flight. pg
 * queues such a query today with a DeprecationWarning ("client.query() when the client is already executing a
 * query") and refuses it from pg 9 on. The usage close (subscription context, per-metric totals) once did.
 */
import { createUsageActivities } from '../../activities/usage';
import type { Database } from '../../store/database';
import { loadSubscriptionContext } from '../../store/subscriptions';
import { inTransaction } from '../../store/transactions';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
/** Queries sent on a transaction while another of its queries had no answer yet (knex's query events). */
const overlaps: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const inFlight = new Map<string, number>();
  db.on('query', (query: { __knexTxId?: string; sql: string }) => {
    // BEGIN, COMMIT and savepoints get no query-response event: only statements are counted.
    if (!query.__knexTxId || /^(begin|commit|rollback|savepoint|release)\b/i.test(query.sql)) return;
    const busy = inFlight.get(query.__knexTxId) ?? 0;
    if (busy > 0) overlaps.push(query.sql);
    inFlight.set(query.__knexTxId, busy + 1);
  });
  const answered = (_response: unknown, query: { __knexTxId?: string; sql: string }): void => {
    if (query.__knexTxId && !/^(begin|commit|rollback|savepoint|release)\b/i.test(query.sql)) inFlight.set(query.__knexTxId, (inFlight.get(query.__knexTxId) ?? 1) - 1);
  };
  db.on('query-response', answered);
  db.on('query-error', (_error: unknown, query: { __knexTxId?: string; sql: string }) => answered(undefined, query));
});

afterAll(async () => {
  await db?.destroy();
});

test('closing usage of a plan with several metrics sends one query at a time on its transaction', async () => {
  await db('billable_metrics').insert([
    { code: 'tx_tokens', name: 'Tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens' },
    { code: 'tx_requests', name: 'Requests', event_type: 'llm.request', aggregation: 'count', property: null },
  ]);
  const plan = await insertPlan(db, {
    code: 'tx-metered',
    billing_interval: 'P1M',
    flat_fee: '10.00',
    charges: [
      { metricCode: 'tx_tokens', price: { model: 'per_unit', unitPrice: '0.001' } },
      { metricCode: 'tx_requests', price: { model: 'per_unit', unitPrice: '0.01' } },
    ] as never,
  });
  const customer = await insertCustomer(db);
  const { row } = await insertSubscription(db, customer, plan, new Date('2031-01-01T00:00:00Z'));
  await db('usage_events').insert([
    { customer_id: customer.id, event_id: 'tx-1', event_type: 'llm.request', occurred_at: new Date('2031-01-05T00:00:00Z'), properties: { tokens: 700 } },
    { customer_id: customer.id, event_id: 'tx-2', event_type: 'llm.request', occurred_at: new Date('2031-01-06T00:00:00Z'), properties: { tokens: 300 } },
  ]);

  const context = await inTransaction(db, (trx) => loadSubscriptionContext(trx, row.id));
  expect(context?.plan.id).toBe(plan.id);
  const closed = await createUsageActivities(db).closeUsagePeriod({ subscriptionId: row.id, periodStart: '2031-01-01T00:00:00.000Z', periodEnd: '2031-02-01T00:00:00.000Z', planId: plan.id });
  expect(closed).toMatchObject({ eventCount: 2, quantities: { tx_tokens: '1000', tx_requests: '2' } });

  expect(overlaps).toEqual([]);
});
