/**
 * A re-rating that corrects a period's price changes what each of its outcomes was billed: an outcome reversed
 * afterwards must be credited at the corrected price, not at the closure's plan (that over-credited the price
 * difference). And a later re-rating of the period counts each credit at what it actually gave.
 *
 * Timeline (2027), 10.00 a month + 1.00 a call (corrected: 0.80 a call), 10 calls on Jan 15:
 *   Feb 1   invoice for January: 10.00 + 10.00 = 20.00 (paid)
 *   then    finance re-rates it at 0.80 a call: credit note 2.00
 *   Feb 4   the customer reverses one January call
 *   Mar 1   invoice for February: 10.00 fee, -0.80 for the reversed January call (was -1.00)
 */
import { randomUUID } from 'node:crypto';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createReratingActivities } from '../../activities/rerating';
import type { Database } from '../../store/database';
import { insertRerate } from '../../store/rerates';
import { creditReversalsOfEndedSubscriptions } from '../../store/reversal-credit-notes';
import { insertReversalEvents } from '../../store/reversals';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'rp_calls', name: 'Calls', event_type: 'rp.call', aggregation: 'count' });
});

afterAll(async () => {
  await db?.destroy();
});

const callsAt = (unitPrice: string) => [{ metricCode: 'rp_calls', price: { model: 'per_unit', unitPrice } }] as never;
const january = { start: '2027-01-01T00:00:00.000Z', end: '2027-02-01T00:00:00.000Z' };
const february = { start: '2027-02-01T00:00:00.000Z', end: '2027-03-01T00:00:00.000Z' };
const march = { start: '2027-03-01T00:00:00.000Z', end: '2027-04-01T00:00:00.000Z' };
const april = { start: '2027-04-01T00:00:00.000Z', end: '2027-05-01T00:00:00.000Z' };
const money = (value: string | number) => Number(value).toFixed(2);
type Target = { customerId: string; subscriptionId: string; invoiceId: string; plan: { id: string; charges: unknown }; cheaper: { id: string } };

async function close(subscriptionId: string, customerId: string, plan: { id: string; charges: unknown }, period: { start: string; end: string }) {
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId, customerId, periodStart: new Date(period.start), periodEnd: new Date(period.end), planId: plan.id, charges: plan.charges as never }),
  );
}

/** January invoiced (20.00, paid). */
async function invoicedJanuary(name: string): Promise<Target> {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, { code: `rp-${name}`, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('1.00'), settings: { disputeWindow: 'P90D' } });
  const cheaper = await insertPlan(db, { code: `rp-${name}`, version: 2, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('0.80'), settings: { disputeWindow: 'P90D' } });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  await insertUsageEvents(db, Array.from({ length: 10 }, (_, i) => ({ customerId: customer.id, eventId: `${name}-${i}`, eventType: 'rp.call', occurredAt: new Date('2027-01-15T00:00:00Z'), properties: {} })));
  await close(subscription.id, customer.id, plan, january);
  const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  expect(invoice.total).toBe('20.00');
  await db('payments').insert({ invoice_id: invoice.invoiceId, attempt: 1, status: 'succeeded', amount: '20.00', currency: 'USD', idempotency_key: `payment:${invoice.invoiceId}:1`, gateway_charge_id: `ch_${name}` });
  await db('invoices').where({ id: invoice.invoiceId }).update({ status: 'paid' });
  return { customerId: customer.id as string, subscriptionId: subscription.id as string, invoiceId: invoice.invoiceId, plan, cheaper };
}

const reverse = (customerId: string, eventId: string) =>
  insertReversalEvents(db, [{ customerId, eventId: `${eventId}-reversal`, eventType: 'rp.call', occurredAt: new Date('2027-02-04T00:00:00Z'), properties: {}, reversesEventId: eventId }]);

/** The next invoice: the usage of `usagePeriod` (none) and the fee of `feePeriod`; returns its reversal credit. */
async function nextInvoice(target: Target, usagePeriod: { start: string; end: string }, feePeriod: { start: string; end: string }) {
  await close(target.subscriptionId, target.customerId, target.plan, usagePeriod);
  const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: target.subscriptionId, kind: 'period', flatFeePeriod: feePeriod, usagePeriod });
  const lines = await db('invoice_lines').where({ invoice_id: invoice.invoiceId }).orderBy('position');
  return { total: invoice.total, reversalCredit: money(lines.filter((line) => line.breakdown?.reversal).reduce((sum, line) => sum + Number(line.amount), 0)) };
}

async function requestRerate(target: Target, correctedPlanId: string | null) {
  const id = randomUUID();
  await db.transaction((trx) =>
    insertRerate(trx, { id, invoiceId: target.invoiceId, subscriptionId: target.subscriptionId, customerId: target.customerId, requestedBy: 'finance', reason: 'audit', correctedPlanId, includeLateUsage: false }),
  );
  const activities = createReratingActivities(db);
  return { id, activities, proposed: await activities.proposeRerate({ rerateId: id }) };
}

async function rerate(target: Target, correctedPlanId: string | null) {
  const { id, activities, proposed } = await requestRerate(target, correctedPlanId);
  if (proposed.status !== 'proposed') return proposed;
  await activities.recordRerateDecision({ rerateId: id, approved: true, by: 'finance', reason: 'ok' });
  return activities.finalizeRerate({ rerateId: id });
}

const creditNotesOf = async (invoiceId: string) => (await db('invoices').where({ credited_invoice_id: invoiceId }).orderBy('created_at').pluck('total')).map(money);

test('a call reversed after a price-correcting re-rating is credited at the corrected price', async () => {
  const target = await invoicedJanuary('after-correction');
  expect(await rerate(target, target.cheaper.id)).toMatchObject({ status: 'finalized', outcome: 'credit', total: '-2.00' });
  await reverse(target.customerId, 'after-correction-0');
  // The call had cost 0.80 once corrected: 10.00 fee - 0.80.
  expect(await nextInvoice(target, february, march)).toEqual({ total: '9.20', reversalCredit: '-0.80' });
  // January in all: 20.00 - 2.00 - 0.80 = 7.20 = 9 × 0.80 + 0 fee for January's usage: nothing left to correct.
  expect(await rerate(target, target.cheaper.id)).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
  expect(await creditNotesOf(target.invoiceId)).toEqual(['2.00']);
});

test('credits given at the old price and at the corrected one: each counted at what it gave', async () => {
  const target = await invoicedJanuary('mixed');
  await reverse(target.customerId, 'mixed-0');
  expect(await nextInvoice(target, february, march)).toEqual({ total: '9.00', reversalCredit: '-1.00' });
  // 20.00 - 1.00 given = 19.00 for 9 calls that cost 7.20 at 0.80.
  expect(await rerate(target, target.cheaper.id)).toMatchObject({ status: 'finalized', outcome: 'credit', total: '-1.80' });
  await reverse(target.customerId, 'mixed-1');
  expect(await nextInvoice(target, march, april)).toEqual({ total: '9.20', reversalCredit: '-0.80' });
  // 20.00 - 1.00 - 1.80 - 0.80 = 6.40 = 8 × 0.80.
  expect(await rerate(target, target.cheaper.id)).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
  expect(await creditNotesOf(target.invoiceId)).toEqual(['1.80']);
});

test('a reversal still owed when the period is re-rated is counted at the price it will be credited at', async () => {
  const target = await invoicedJanuary('owed');
  await reverse(target.customerId, 'owed-0');
  // 9 calls at 0.80 = 7.20; billed 20.00, of which 0.80 comes back with the next invoice: credit 2.00 now.
  expect(await rerate(target, target.cheaper.id)).toMatchObject({ status: 'finalized', outcome: 'credit', total: '-2.00' });
  expect(await nextInvoice(target, february, march)).toEqual({ total: '9.20', reversalCredit: '-0.80' });
  expect(await rerate(target, target.cheaper.id)).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
});

test('a proposal that counted an owed reversal at its corrected price is stale once an invoice credited it at the old one', async () => {
  const target = await invoicedJanuary('owed-race');
  await reverse(target.customerId, 'owed-race-0');
  const { id, activities, proposed } = await requestRerate(target, target.cheaper.id);
  expect(proposed).toMatchObject({ status: 'proposed', total: '-2.00' });
  await activities.recordRerateDecision({ rerateId: id, approved: true, by: 'finance', reason: 'ok' });
  // The next invoice credits the reversal (at the price in effect: 1.00) before the approved proposal is carried out.
  expect(await nextInvoice(target, february, march)).toEqual({ total: '9.00', reversalCredit: '-1.00' });
  await expect(activities.finalizeRerate({ rerateId: id })).rejects.toMatchObject({ type: 'rerate_proposal_stale' });
  expect(await creditNotesOf(target.invoiceId)).toEqual([]);
  // Asked again: 20.00 - 1.00 = 19.00 billed for 7.20.
  expect(await rerate(target, target.cheaper.id)).toMatchObject({ status: 'finalized', outcome: 'credit', total: '-1.80' });
});

test('a plain re-rating after a price correction keeps the corrected price', async () => {
  const target = await invoicedJanuary('plain-after');
  expect(await rerate(target, target.cheaper.id)).toMatchObject({ status: 'finalized', outcome: 'credit', total: '-2.00' });
  expect(await rerate(target, null)).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
});

test('once the subscription ended: the reversal credit note refunds the corrected price, and a re-rating counts it', async () => {
  const target = await invoicedJanuary('ended');
  expect(await rerate(target, target.cheaper.id)).toMatchObject({ status: 'finalized', outcome: 'credit', total: '-2.00' });
  await db('subscriptions').where({ id: target.subscriptionId }).update({ status: 'canceled' });
  await reverse(target.customerId, 'ended-0');
  const issued = await creditReversalsOfEndedSubscriptions(db, [target.customerId]);
  expect(issued.map((note) => money(note.creditNote.total))).toEqual(['0.80']);
  expect(await rerate(target, target.cheaper.id)).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
});
