/**
 * A seat change stored while its period's close is running. The next period used to open at the level the close
 * kept plus the unclaimed changes "received after that close" (received_at > closed_at). Both instants are
 * transaction starts, while what the close saw is decided by when its reads ran (after the customer's rollup lock):
 *   - an ingestion that began before the close but stored its row after the close committed (it waited for the
 *     rollup lock): the row is neither claimed nor counted as late, so the next period opened without it;
 *   - an ingestion that began after the close (closed_at) but committed before the close read: a late change of an
 *     earlier period counted in the close's kept level and again as "received after the close" in the next one.
 * The level a close keeps is now split: the part made of claimed changes is carried, and every change still
 * unclaimed is read afresh by the next period, whenever it arrived (store/seat-usage.ts).
 *
 * Postgres only: the close and the ingestion are called as the activity and the API call them, their interleaving
 * forced with held transactions (no sleeps).
 */
import type { Charge } from '../../domain/rating';
import type { Database } from '../../store/database';
import { insertEventsFoldingRollups, lockRollupsShared } from '../../store/rollups';
import { closeUsage, insertUsageEvents, usageForCharges } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'race_seats', name: 'Seats', event_type: 'race.seat', aggregation: 'prorated_sum', property: 'delta', allow_negative: true });
  await db('billable_metrics').insert({ code: 'race_editors', name: 'Editors', event_type: 'race.editors', aggregation: 'prorated_latest', property: 'count' });
});

afterAll(async () => {
  await db?.destroy();
});

const charges = [
  { metricCode: 'race_seats', price: { model: 'per_unit', unitPrice: '10.00' } },
  { metricCode: 'race_editors', price: { model: 'per_unit', unitPrice: '3.00' } },
] as unknown as Charge[];
const january = { start: new Date('2029-01-01T00:00:00Z'), end: new Date('2029-02-01T00:00:00Z') };
const february = { start: new Date('2029-02-01T00:00:00Z'), end: new Date('2029-03-01T00:00:00Z') };
const march = { start: new Date('2029-03-01T00:00:00Z'), end: new Date('2029-04-01T00:00:00Z') };

async function subscribe(name: string) {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, { code: `race-${name}`, billing_interval: 'P1M', flat_fee: '0', charges: charges as never });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: january.start, current_period_start: january.start, current_period_end: january.end })
    .returning('*');
  const close = (trx: Parameters<typeof closeUsage>[0], period: { start: Date; end: Date }) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: period.start, periodEnd: period.end, planId: plan.id, charges });
  const preview = async (period: { start: Date; end: Date }) =>
    Object.fromEntries((await usageForCharges(db, charges, { kind: 'unclaimed', customerId: customer.id, from: period.start, to: period.end }, plan.currency)).map((u) => [u.metricCode, u.quantity]));
  const event = (id: string, type: 'race.seat' | 'race.editors', at: string, properties: Record<string, unknown>) => ({ customerId: customer.id, eventId: id, eventType: type, occurredAt: new Date(at), properties });
  return { customer, close, preview, event };
}

/** The ingestion of store/usage.ts insertUsageEvents, split where its transaction waits for the customer's rollup lock. */
async function ingestionWaitingForTheLock(events: { customerId: string; eventId: string; eventType: string; occurredAt: Date; properties: Record<string, unknown> }[]) {
  const trx = await db.transaction();
  await trx.raw('SELECT now()'); // the transaction has begun: its received_at is fixed
  return {
    async finish() {
      await lockRollupsShared(trx, events.map((e) => e.customerId));
      await insertEventsFoldingRollups(trx, {
        customerIds: events.map((e) => e.customerId),
        eventIds: events.map((e) => e.eventId),
        eventTypes: events.map((e) => e.eventType),
        occurredAts: events.map((e) => e.occurredAt.toISOString()),
        properties: events.map((e) => JSON.stringify(e.properties)),
      });
      await trx.commit();
    },
  };
}

/**
 * Whether the event's received_at is before the close's closed_at, compared in Postgres to the microsecond: read
 * into JS Dates (milliseconds) two instants of one millisecond compared equal (a clean-clone CI run).
 */
async function receivedBeforeClosed(eventRowId: string, closeId: string): Promise<boolean> {
  const result = await db.raw<{ rows: { before: boolean }[] }>(
    'SELECT u.received_at < c.closed_at AS before FROM usage_events u, usage_period_closures c WHERE u.id = ? AND c.id = ?',
    [eventRowId, closeId],
  );
  return result.rows[0].before;
}

//   Jan 5   +1 seat, editors level 1 (stored before the close)
//   Feb 1   January's close runs; an ingestion that began just before it stores +2 seats and editors level 4
//           stamped Jan 20 once the close has committed: late usage of January
//   Feb     opens at 3 seats and 4 editors, all month: 3.00 seats (30.00), 4 editors (12.00) - it billed 1 and 1
test('a seat change whose ingestion began before the close and stored after it reaches the next period', async () => {
  const { customer, close, preview, event } = await subscribe('began-before-close');
  await insertUsageEvents(db, [event('s1', 'race.seat', '2029-01-05T00:00:00Z', { delta: 1 }), event('e1', 'race.editors', '2029-01-05T00:00:00Z', { count: 1 })]);

  const ingestion = await ingestionWaitingForTheLock([event('s2', 'race.seat', '2029-01-20T00:00:00Z', { delta: 2 }), event('e2', 'race.editors', '2029-01-20T00:00:00Z', { count: 4 })]);
  const januaryClose = await db.transaction((trx) => close(trx, january));
  await ingestion.finish();

  const late = await db('usage_events').where({ customer_id: customer.id, event_id: 's2' }).first();
  expect(late.period_close_id).toBeNull(); // not claimed: stored after the close
  expect(await receivedBeforeClosed(late.id, januaryClose.id)).toBe(true); // yet "received" before it

  expect(await preview(february)).toEqual({ race_seats: '3', race_editors: '4' });
  const februaryClose = await db.transaction((trx) => close(trx, february));
  expect([februaryClose.totals.race_seats.quantity, februaryClose.totals.race_editors.quantity]).toEqual(['3', '4']);
  expect([februaryClose.totals.race_seats.openingLevel, februaryClose.totals.race_seats.closingLevel?.level]).toEqual(['3', '3']);
  const marchClose = await db.transaction((trx) => close(trx, march));
  expect([marchClose.totals.race_seats.quantity, marchClose.totals.race_editors.quantity]).toEqual(['3', '4']);
});

//   Jan 5   +1 seat, editors level 1; January closed
//   Feb 1   February's close begins (closed_at); before it takes the rollup lock, +2 seats and editors level 4
//           stamped Jan 20 are stored (late usage of January, received after February's closed_at)
//   Feb     the close counts them: 3 seats, 4 editors
//   Mar     3 seats, 4 editors - seats billed 5: the late +2 counted in February's kept level and again as late
test('a late seat change stored while the next close is starting is counted once, not again in the period after', async () => {
  const { customer, close, preview, event } = await subscribe('during-close');
  await insertUsageEvents(db, [event('s1', 'race.seat', '2029-01-05T00:00:00Z', { delta: 1 }), event('e1', 'race.editors', '2029-01-05T00:00:00Z', { count: 1 })]);
  await db.transaction((trx) => close(trx, january));

  const februaryClose = await db.transaction(async (trx) => {
    await trx.raw('SELECT now()'); // the activity's transaction has begun (it loads the subscription and plan first)
    await insertUsageEvents(db, [event('s2', 'race.seat', '2029-01-20T00:00:00Z', { delta: 2 }), event('e2', 'race.editors', '2029-01-20T00:00:00Z', { count: 4 })]);
    return close(trx, february);
  });
  const late = await db('usage_events').where({ customer_id: customer.id, event_id: 's2' }).first();
  expect(await receivedBeforeClosed(late.id, februaryClose.id)).toBe(false); // "received" after the close began
  expect([februaryClose.totals.race_seats.quantity, februaryClose.totals.race_editors.quantity]).toEqual(['3', '4']);

  expect(await preview(march)).toEqual({ race_seats: '3', race_editors: '4' });
  const marchClose = await db.transaction((trx) => close(trx, march));
  expect([marchClose.totals.race_seats.quantity, marchClose.totals.race_editors.quantity]).toEqual(['3', '4']);
});

//   Jan 5   +1 seat; January closed
//   Jan 20  +2 seats, stored after January's close (late, unclaimed)
//   Feb 15  -2 seats (claimed by February's close): the claimed part of the level is 1 - 2 = -1, the level itself 1
//   Feb     3 seats for 14 days, 1 for 14: 2.00; March opens at 1 seat
test('a removal claimed while the addition it removes is still unclaimed closes, and the next period opens at the whole level', async () => {
  const { close, preview, event } = await subscribe('removal-of-late-addition');
  await insertUsageEvents(db, [event('s1', 'race.seat', '2029-01-05T00:00:00Z', { delta: 1 })]);
  await db.transaction((trx) => close(trx, january));
  await insertUsageEvents(db, [event('s2', 'race.seat', '2029-01-20T00:00:00Z', { delta: 2 }), event('s3', 'race.seat', '2029-02-15T00:00:00Z', { delta: -2 })]);
  expect((await preview(february)).race_seats).toBe('2');
  const februaryClose = await db.transaction((trx) => close(trx, february));
  expect(februaryClose.totals.race_seats).toMatchObject({ quantity: '2', openingLevel: '3', closingLevel: { level: '1', claimed: { level: '-1' } } });
  expect((await preview(march)).race_seats).toBe('1');
  expect((await db.transaction((trx) => close(trx, march))).totals.race_seats.quantity).toBe('1');
});

//   A close kept before the claimed part existed (its closingLevel has none, and counted a late change of December):
//   the next period counts its opening from the changes themselves, once.
test('a close kept without the claimed part: the next opening is counted from the changes', async () => {
  const { customer, close, preview, event } = await subscribe('kept-before');
  await insertUsageEvents(db, [event('s1', 'race.seat', '2029-01-05T00:00:00Z', { delta: 1 }), event('e1', 'race.editors', '2029-01-05T00:00:00Z', { count: 2 })]);
  const januaryClose = await db.transaction((trx) => close(trx, january));
  await insertUsageEvents(db, [event('s2', 'race.seat', '2029-01-20T00:00:00Z', { delta: 2 })]);
  const legacy = Object.fromEntries(Object.entries(januaryClose.totals).map(([code, usage]) => [code, { ...usage, closingLevel: { level: usage.closingLevel!.level, setAt: usage.closingLevel!.setAt } }]));
  await db('usage_period_closures').where({ id: januaryClose.id, customer_id: customer.id }).update({ totals: JSON.stringify(legacy) });
  expect(await preview(february)).toEqual({ race_seats: '3', race_editors: '2' });
  const februaryClose = await db.transaction((trx) => close(trx, february));
  expect(februaryClose.totals.race_seats).toMatchObject({ quantity: '3', closingLevel: { level: '3', claimed: { level: '1' } } });
  expect(await preview(march)).toEqual({ race_seats: '3', race_editors: '2' });
});
