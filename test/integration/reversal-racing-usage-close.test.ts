/**
 * A reversal stored while its period's usage close runs. Whether the next invoice credits it must follow whether the
 * close counted the original, not which of the two transactions began first: a reversal counted as "after the close"
 * by its transaction's start time against the close's start time.
 *
 *   - The reversal's transaction began, the close began after it, claimed and counted the call and committed, and
 *     only then did the reversal mark the call: billed, and never credited (its start was before the close's). Fixed
 *     in store/reversals.ts: a reversal that finds its original claimed is received when it marks it.
 *   - The close began, the reversal began after it and marked the call before the close got to it: the close
 *     claimed the reversed call without counting it, and the invoice still credited it (credited, never billed).
 *     Fixed in store/usage.ts: a close claims no reversed event.
 *
 * Timeline (2029), 10.00 a month + 1.00 a call, reversals accepted for 90 days:
 *   Jan 15  8 calls; Feb 1 January is closed while a call of it is reversed; the February invoice bills January's
 *           usage and credits a reversed call the close had counted (10.00 + 8.00 - 1.00), or bills the 7 calls the
 *           close counted and credits nothing (10.00 + 7.00).
 * Postgres only: the activities are called as the workflow calls them.
 */
import type { Knex } from 'knex';
import { createInvoicingActivities } from '../../activities/invoicing';
import type { Database } from '../../store/database';
import { insertReversalEvents, type NewReversalEvent } from '../../store/reversals';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'rc_calls', name: 'Calls', event_type: 'rc.call', aggregation: 'count' });
});

afterAll(async () => {
  await db?.destroy();
});

const january = { start: '2029-01-01T00:00:00.000Z', end: '2029-02-01T00:00:00.000Z' };
const february = { start: '2029-02-01T00:00:00.000Z', end: '2029-03-01T00:00:00.000Z' };
const march = { start: '2029-03-01T00:00:00.000Z', end: '2029-04-01T00:00:00.000Z' };

/** An active subscription with 8 January calls (ids `<name>-0` .. `<name>-7`), nothing closed yet. */
async function januaryWithCalls(name: string) {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, {
    code: `rc-${name}`,
    billing_interval: 'P1M',
    flat_fee: '10.00',
    charges: [{ metricCode: 'rc_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never,
    settings: { disputeWindow: 'P90D' },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  await insertUsageEvents(db, Array.from({ length: 8 }, (_, i) => ({ customerId: customer.id, eventId: `${name}-${i}`, eventType: 'rc.call', occurredAt: new Date('2029-01-15T00:00:00Z'), properties: {} })));
  const closeIn = (trx: Knex.Transaction, period: { start: string; end: string }) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(period.start), periodEnd: new Date(period.end), planId: plan.id, charges: plan.charges as never });
  const reversal: NewReversalEvent = { customerId: customer.id, eventId: `${name}-0-reversal`, eventType: 'rc.call', occurredAt: new Date('2029-02-01T00:00:00Z'), properties: {}, reversesEventId: `${name}-0` };
  return { subscriptionId: subscription.id as string, closeIn, reversal };
}

/** What the close of January counted, and the February invoice (which bills January's usage) as [description, amount]. */
async function januaryAsBilled(subscriptionId: string, closeIn: (trx: Knex.Transaction, period: { start: string; end: string }) => Promise<unknown>) {
  const closure = await db('usage_period_closures').where({ subscription_id: subscriptionId, period_start: new Date(january.start) }).first();
  await db.transaction((trx) => closeIn(trx, february));
  const invoicing = createInvoicingActivities(db);
  const feb = await invoicing.createPeriodInvoice({ subscriptionId, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  const mar = await invoicing.createPeriodInvoice({ subscriptionId, kind: 'period', flatFeePeriod: march, usagePeriod: february });
  const lines = async (invoiceId: string) =>
    (await db('invoice_lines').where({ invoice_id: invoiceId }).orderBy('position')).map((line) => [line.description, Number(line.amount).toFixed(2)]);
  return { callsCounted: closure.totals.rc_calls.quantity, february: { total: feb.total, lines: await lines(feb.invoiceId) }, march: { total: mar.total, lines: await lines(mar.invoiceId) } };
}

test('a reversal whose transaction began before the close, but marked the call only after the close counted it, is credited', async () => {
  const { subscriptionId, closeIn, reversal } = await januaryWithCalls('begun-first');
  // The reversal's transaction begins and is held right there (as a slow first statement or a paused process would
  // hold it); January's close begins after it, claims and counts all 8 calls and commits; then the reversal goes on.
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let begun!: () => void;
  const began = new Promise<void>((resolve) => (begun = resolve));
  const held = {
    transaction: (work: (trx: Knex.Transaction) => Promise<unknown>) =>
      db.transaction(async (trx) => {
        begun();
        await gate;
        return work(trx);
      }),
  } as unknown as Knex;
  const storing = insertReversalEvents(held, [reversal]);
  await began;
  await db.transaction((trx) => closeIn(trx, january));
  release();
  expect(await storing).toHaveLength(1);

  // January billed 8 calls; the one reversed after the close is credited by the invoice that bills them, once.
  const billed = await januaryAsBilled(subscriptionId, closeIn);
  expect(billed.callsCounted).toBe('8');
  expect(billed.february).toEqual({
    total: '17.00',
    lines: [
      ['rc-begun-first subscription fee', '10.00'],
      ['rc_calls', '8.00'],
      ['rc_calls (reversed outcomes)', '-1.00'],
    ],
  });
  expect(billed.march.total).toBe('10.00');
});

// Known gap, kept failing-marked: the fix is outside store/reversals.ts. closeUsage (store/usage.ts) claims the
// reversed call without counting it, and the reversal, received after the close's transaction began, is then taken
// for one of a billed call: credited 1.00 on the invoice that billed 7 calls (16.00 for 17.00). The close must not
// claim what is already reversed (`.whereNull('reversed_by_event_id')` in its claim): unclaimed, no closure credits it.
test('a reversal that marked the call before the close claimed it is not credited: the close never counted the call', async () => {
  const { subscriptionId, closeIn, reversal } = await januaryWithCalls('marked-first');
  // January's close begins (its transaction's first statement has run); the reversal is stored and committed before
  // the close gets to claim the calls; the close then claims and counts what stands: 7 calls.
  const close = await db.transaction();
  try {
    await close.raw('SELECT 1');
    expect(await insertReversalEvents(db, [reversal])).toHaveLength(1);
    await closeIn(close, january);
    await close.commit();
  } finally {
    if (!close.isCompleted()) await close.rollback();
  }

  const billed = await januaryAsBilled(subscriptionId, closeIn);
  expect(billed.callsCounted).toBe('7');
  // Nothing to credit: the reversed call was never billed.
  expect(billed.february).toEqual({
    total: '17.00',
    lines: [
      ['rc-marked-first subscription fee', '10.00'],
      ['rc_calls', '7.00'],
    ],
  });
  expect(billed.march.total).toBe('10.00');
});
