/**
 * An outcome reversed after its period was invoiced is credited by the reversal path (a line on the next invoice,
 * or a credit note once the subscription ended). Re-rating that period recomputes it without reversed outcomes,
 * so it must count those credits as already given: otherwise it proposes the same credit a second time.
 *
 * Timeline (2027), 10.00 a month + 1.00 a call, 10 calls on Jan 15:
 *   Feb 1   invoice for January: 10.00 + 10.00 = 20.00 (paid)
 *   Feb 4   the customer reverses one January call (after January closed)
 *   Mar 1   invoice for February: 10.00 fee, 0.00 usage, −1.00 for the reversed January call
 *   then    finance re-rates the February 1 invoice
 *
 * And a late call reversed before any re-rating billed it was never billed: a re-rating that bills late usage must
 * leave it unclaimed, or its reversal looks like one of an invoiced outcome and the next invoice credits it.
 */
import { randomUUID } from 'node:crypto';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createReratingActivities } from '../../activities/rerating';
import type { Database } from '../../store/database';
import { insertRerate } from '../../store/rerates';
import { insertReversalEvents } from '../../store/reversals';
import { closeUsage, insertUsageEvents, listLateUsage } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'rv_calls', name: 'Calls', event_type: 'rv.call', aggregation: 'count' });
});

afterAll(async () => {
  await db?.destroy();
});

const callsAt = (unitPrice: string) => [{ metricCode: 'rv_calls', price: { model: 'per_unit', unitPrice } }] as never;
const january = { start: '2027-01-01T00:00:00.000Z', end: '2027-02-01T00:00:00.000Z' };
const february = { start: '2027-02-01T00:00:00.000Z', end: '2027-03-01T00:00:00.000Z' };
const march = { start: '2027-03-01T00:00:00.000Z', end: '2027-04-01T00:00:00.000Z' };
const money = (value: string | number) => Number(value).toFixed(2);

async function close(subscriptionId: string, customerId: string, plan: { id: string; charges: unknown }, period: { start: string; end: string }) {
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId, customerId, periodStart: new Date(period.start), periodEnd: new Date(period.end), planId: plan.id, charges: plan.charges as never }),
  );
}

/** January invoiced (20.00, paid). */
async function invoicedJanuary(name: string) {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, { code: `rv-${name}`, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('1.00'), settings: { disputeWindow: 'P30D' } });
  const cheaper = await insertPlan(db, { code: `rv-${name}`, version: 2, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('0.80'), settings: { disputeWindow: 'P30D' } });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  await insertUsageEvents(db, Array.from({ length: 10 }, (_, i) => ({ customerId: customer.id, eventId: `${name}-${i}`, eventType: 'rv.call', occurredAt: new Date('2027-01-15T00:00:00Z'), properties: {} })));
  await close(subscription.id, customer.id, plan, january);
  const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  expect(invoice.total).toBe('20.00');
  await db('payments').insert({ invoice_id: invoice.invoiceId, attempt: 1, status: 'succeeded', amount: '20.00', currency: 'USD', idempotency_key: `payment:${invoice.invoiceId}:1`, gateway_charge_id: `ch_${name}` });
  await db('invoices').where({ id: invoice.invoiceId }).update({ status: 'paid' });
  return { customerId: customer.id as string, subscriptionId: subscription.id as string, invoiceId: invoice.invoiceId, plan, cheaper };
}

const reverse = (customerId: string, eventId: string) =>
  insertReversalEvents(db, [{ customerId, eventId: `${eventId}-reversal`, eventType: 'rv.call', occurredAt: new Date('2027-02-04T00:00:00Z'), properties: {}, reversesEventId: eventId }]);

/** January invoiced (20.00, paid), then one January call reversed on Feb 4. */
async function reversedAfterInvoice(name: string) {
  const target = await invoicedJanuary(name);
  await reverse(target.customerId, `${name}-0`);
  return target;
}

/** The invoice for February's usage (and March's fee): it carries the reversed January call's credit. */
async function marchInvoice(target: { subscriptionId: string; customerId: string; plan: { id: string; charges: unknown } }) {
  await close(target.subscriptionId, target.customerId, target.plan, february);
  const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: target.subscriptionId, kind: 'period', flatFeePeriod: march, usagePeriod: february });
  const lines = await db('invoice_lines').where({ invoice_id: invoice.invoiceId }).orderBy('position');
  return { total: invoice.total, reversalCredit: money(lines.filter((line) => line.breakdown?.reversal).reduce((sum, line) => sum + Number(line.amount), 0)) };
}

async function rerate(target: { invoiceId: string; subscriptionId: string; customerId: string }, correctedPlanId: string | null, includeLateUsage = false) {
  const id = randomUUID();
  await db.transaction((trx) =>
    insertRerate(trx, { id, invoiceId: target.invoiceId, subscriptionId: target.subscriptionId, customerId: target.customerId, requestedBy: 'finance', reason: 'audit', correctedPlanId, includeLateUsage }),
  );
  const activities = createReratingActivities(db);
  const proposed = await activities.proposeRerate({ rerateId: id });
  if (proposed.status !== 'proposed') return proposed;
  await activities.recordRerateDecision({ rerateId: id, approved: true, by: 'finance', reason: 'ok' });
  return activities.finalizeRerate({ rerateId: id });
}

const creditNotesOf = async (invoiceId: string) => (await db('invoices').where({ credited_invoice_id: invoiceId }).pluck('total')).map(money);

test('the next invoice credited the reversed call: a re-rating of the period finds nothing to do', async () => {
  const target = await reversedAfterInvoice('credited-first');
  expect(await marchInvoice(target)).toEqual({ total: '9.00', reversalCredit: '-1.00' });
  expect(await rerate(target, null)).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
  expect(await creditNotesOf(target.invoiceId)).toEqual([]);
});

test('re-rated before the next invoice: the reversed call is credited once, by the next invoice', async () => {
  const target = await reversedAfterInvoice('rerated-first');
  expect(await rerate(target, null)).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
  expect(await marchInvoice(target)).toEqual({ total: '9.00', reversalCredit: '-1.00' });
  expect(await creditNotesOf(target.invoiceId)).toEqual([]);
});

test('a corrected price re-rates only the calls that stand: 9 × 0.80 in all for January', async () => {
  const target = await reversedAfterInvoice('corrected');
  expect(await marchInvoice(target)).toEqual({ total: '9.00', reversalCredit: '-1.00' });
  // Billed 10.00, 1.00 credited back for the reversed call: 9.00 for 9 calls, which cost 7.20 at 0.80.
  expect(await rerate(target, target.cheaper.id)).toMatchObject({ status: 'finalized', outcome: 'credit', total: '-1.80' });
  expect(await creditNotesOf(target.invoiceId)).toEqual(['1.80']);
});

test('a late call reversed before the re-rating that bills late usage is neither billed nor credited', async () => {
  const target = await invoicedJanuary('late-reversed');
  // Feb 3: two calls stamped Jan 20 arrive after January closed; Feb 4: the first is reversed (it was never billed).
  await insertUsageEvents(db, ['late-reversed-late-1', 'late-reversed-late-2'].map((eventId) => ({ customerId: target.customerId, eventId, eventType: 'rv.call', occurredAt: new Date('2027-01-20T00:00:00Z'), properties: {} })));
  await reverse(target.customerId, 'late-reversed-late-1');
  // The re-rating bills the late call that stands: +1.00.
  expect(await rerate(target, null, true)).toMatchObject({ status: 'finalized', outcome: 'adjustment', total: '1.00' });
  expect(await listLateUsage(db, target.subscriptionId, target.customerId)).toEqual([]); // nothing left pending
  // The reversed late call was never billed: the next invoice owes no credit for it.
  expect(await marchInvoice(target)).toEqual({ total: '10.00', reversalCredit: '0.00' });
});
