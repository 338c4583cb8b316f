/**
 * A late seat change counts in its own period and in every later one (the level holds). Re-rating its period with
 * late usage bills it there and claims it; a later period already invoiced without it (closed before it arrived)
 * billed one seat too few too, and nothing said so: once the change was claimed it was no longer pending anywhere.
 * The re-rating's proposal now names each later invoice whose seats it changes, with the difference a re-rating of
 * that invoice proposes, and re-rating that invoice bills exactly it.
 *
 * Same for a `prorated_latest` level, which holds until the later period sets its own (last test).
 *
 * Postgres only: ingestion, closes, invoices and the re-rating activities are called as the workflows call them.
 *
 *   2030, 10.00 a seat a month (prorated_sum), no fee
 *   Jan 1   +2 seats                    -> Jan invoice 20.00 (2 seats all January)
 *   Feb     no change                   -> Feb invoice 20.00
 *   Mar 2   +1 seat stamped Jan 16 arrives late (16 of January's 31 days left)
 *           re-rating January with late usage: 16/31 x 10.00 = 5.161... -> +5.16
 *           February billed 2 seats where 3 stood all month: +10.00, named by January's proposal
 */
import { randomUUID } from 'node:crypto';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createReratingActivities } from '../../activities/rerating';
import type { Charge } from '../../domain/rating';
import type { Database } from '../../store/database';
import { findRerate, insertRerate } from '../../store/rerates';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'rr_editors', name: 'Editors', event_type: 'rr.editors', aggregation: 'prorated_latest', property: 'count' });
  await db('billable_metrics').insert({ code: 'rr_seats', name: 'Seats', event_type: 'rr.seat', aggregation: 'prorated_sum', property: 'delta', allow_negative: true }); // as the API creates it
});

afterAll(async () => {
  await db?.destroy();
});

const seatCharges = [{ metricCode: 'rr_seats', price: { model: 'per_unit', unitPrice: '10.00' } }] as unknown as Charge[];
const editorCharges = [{ metricCode: 'rr_editors', price: { model: 'per_unit', unitPrice: '10.00' } }] as unknown as Charge[];
const month = (m: number) => ({ start: new Date(Date.UTC(2030, m - 1, 1)).toISOString(), end: new Date(Date.UTC(2030, m, 1)).toISOString() });

async function seatSubscription(code: string, charges = seatCharges) {
  const customer = await insertCustomer(db, { external_id: code });
  const plan = await insertPlan(db, { code, billing_interval: 'P1M', flat_fee: '0', charges: charges as never, settings: { disputeWindow: 'P90D' } });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${code}`, start_at: month(1).start, current_period_start: month(1).start, current_period_end: month(1).end })
    .returning('*');
  const target = (invoiceId: string) => ({ invoiceId, subscriptionId: subscription.id as string, customerId: customer.id as string });
  /** Closes month m's usage and invoices it with month m + 1's (zero) fee, as the period step does; paid. */
  const bill = async (m: number) => {
    await db.transaction((trx) =>
      closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(month(m).start), periodEnd: new Date(month(m).end), planId: plan.id, charges }),
    );
    const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: month(m + 1), usagePeriod: month(m) });
    await db('invoices').where({ id: invoice.invoiceId }).update({ status: 'paid' });
    return { ...invoice, target: target(invoice.invoiceId) };
  };
  const seats = (id: string, at: string, delta: number) =>
    insertUsageEvents(db, [{ customerId: customer.id, eventId: id, eventType: 'rr.seat', occurredAt: new Date(at), properties: { delta } }]);
  const editors = (id: string, at: string, count: number) =>
    insertUsageEvents(db, [{ customerId: customer.id, eventId: id, eventType: 'rr.editors', occurredAt: new Date(at), properties: { count } }]);
  return { bill, seats, editors };
}

async function propose(target: { invoiceId: string; subscriptionId: string; customerId: string }, includeLateUsage: boolean) {
  const id = randomUUID();
  await db.transaction((trx) => insertRerate(trx, { id, ...target, requestedBy: 'finance', reason: 'audit', correctedPlanId: null, includeLateUsage }));
  const activities = createReratingActivities(db);
  const proposed = await activities.proposeRerate({ rerateId: id });
  const carryOut = async () => {
    await activities.recordRerateDecision({ rerateId: id, approved: true, by: 'finance', reason: 'ok' });
    return activities.finalizeRerate({ rerateId: id });
  };
  return { id, proposed, carryOut };
}

test('re-rating a period with a late seat change names the later invoice it under-billed, and re-rating that one bills the rest', async () => {
  const { bill, seats } = await seatSubscription('late-seat-later-period');
  await seats('two', '2030-01-01T00:00:00Z', 2);
  const january = await bill(1);
  const february = await bill(2);
  expect([january.total, february.total]).toEqual(['20.00', '20.00']);
  await seats('late-one', '2030-01-16T00:00:00Z', 1);
  // March closes after the change arrived: it opens at 3 seats (30.00) and is not named.
  expect((await bill(3)).total).toBe('30.00');

  const januaryRerate = await propose(january.target, true);
  expect(januaryRerate.proposed).toMatchObject({ status: 'proposed', outcome: 'adjustment', total: '5.16' });
  // Before: the proposal said nothing of February, and once carried out the seat was pending nowhere.
  expect((await findRerate(db, januaryRerate.id))?.proposal?.laterInvoicesChanged).toEqual([
    { invoiceId: february.invoiceId, usagePeriod: month(2), total: '10.00', outcome: 'adjustment' },
  ]);
  expect(await januaryRerate.carryOut()).toMatchObject({ status: 'finalized', outcome: 'adjustment', total: '5.16' });

  const februaryRerate = await propose(february.target, false);
  expect(februaryRerate.proposed).toMatchObject({ status: 'proposed', outcome: 'adjustment', total: '10.00' });
  expect(await februaryRerate.carryOut()).toMatchObject({ status: 'finalized', outcome: 'adjustment', total: '10.00' });
  // January billed 20.00 + 5.16 = 25.16 = (2 x 31 + 1 x 16) / 31 x 10.00; February 30.00 = 3 seats: nothing left.
  expect((await propose(january.target, true)).proposed).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
  expect((await propose(february.target, true)).proposed).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
  expect((await bill(4)).total).toBe('30.00');
});

//   Jan 1  +3 seats -> Jan and Feb invoices 30.00 each
//   Mar 2  -1 seat stamped Jan 16 arrives late: January -5.16, February billed a seat that was gone: -10.00
test('a late seat removal names the later invoice it over-billed, with the credit a re-rating of it proposes', async () => {
  const { bill, seats } = await seatSubscription('late-seat-removed');
  await seats('three', '2030-01-01T00:00:00Z', 3);
  const january = await bill(1);
  const february = await bill(2);
  expect([january.total, february.total]).toEqual(['30.00', '30.00']);
  await seats('late-removal', '2030-01-16T00:00:00Z', -1);

  const januaryRerate = await propose(january.target, true);
  expect(januaryRerate.proposed).toMatchObject({ status: 'proposed', outcome: 'credit', total: '-5.16' });
  expect((await findRerate(db, januaryRerate.id))?.proposal?.laterInvoicesChanged).toEqual([
    { invoiceId: february.invoiceId, usagePeriod: month(2), total: '-10.00', outcome: 'credit' },
  ]);
  expect((await propose(february.target, false)).proposed).toMatchObject({ status: 'proposed', outcome: 'credit', total: '-10.00' });
});

test('a re-rating without late usage names no later invoice', async () => {
  const { bill, seats } = await seatSubscription('late-seat-not-asked');
  await seats('two', '2030-01-01T00:00:00Z', 2);
  const january = await bill(1);
  await bill(2);
  await seats('late-one', '2030-01-16T00:00:00Z', 1);
  const januaryRerate = await propose(january.target, false);
  expect(januaryRerate.proposed).toMatchObject({ status: 'nothing_to_do' });
  expect((await findRerate(db, januaryRerate.id))?.proposal).not.toHaveProperty('laterInvoicesChanged');
});

//   prorated_latest, 10.00 an editor: Jan 1 level 2; Feb 10 level 2 again (claimed by February) -> 20.00, 20.00
//   late: level 3 stamped Jan 16 -> January +5.16 (16/31); February held 3 until Feb 10 (9 of 28 days), then 2:
//   (3 x 9 + 2 x 19) / 28 = 2.3214... editors = 23.21, billed 20.00: +3.21, named, and billed by February's re-rating
test('a late level holds into the later invoice until that period sets its own', async () => {
  const { bill, editors } = await seatSubscription('late-level-later-period', editorCharges);
  await editors('two', '2030-01-01T00:00:00Z', 2);
  const january = await bill(1);
  await editors('two-again', '2030-02-10T00:00:00Z', 2);
  const february = await bill(2);
  expect([january.total, february.total]).toEqual(['20.00', '20.00']);
  await editors('late-three', '2030-01-16T00:00:00Z', 3);

  const januaryRerate = await propose(january.target, true);
  expect(januaryRerate.proposed).toMatchObject({ status: 'proposed', outcome: 'adjustment', total: '5.16' });
  expect((await findRerate(db, januaryRerate.id))?.proposal?.laterInvoicesChanged).toEqual([
    { invoiceId: february.invoiceId, usagePeriod: month(2), total: '3.21', outcome: 'adjustment' },
  ]);
  await januaryRerate.carryOut();
  expect(await (await propose(february.target, false)).carryOut()).toMatchObject({ status: 'finalized', outcome: 'adjustment', total: '3.21' });
  expect((await bill(3)).total).toBe('20.00');
});
