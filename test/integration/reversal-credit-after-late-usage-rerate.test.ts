/**
 * A re-rating with late usage claims the late events into the period's closure and bills them. An outcome of that
 * period reversed afterwards must be credited against what the period bills now (its closed usage plus the late
 * events), not against the usage as it was closed: with an included credit, the closed usage alone was inside the
 * credit, so the reversal credited nothing while the customer had paid for the call.
 *
 * Timeline (2027), 10.00 a month + 1.00 a call, 10.00 of included usage credit:
 *   Jan 15  8 calls                   -> Feb 1 invoice: 10.00 fee + 8.00 - 8.00 credit = 10.00 (paid)
 *   Feb 3   5 calls stamped Jan 20 arrive late; finance re-rates with late usage: 13.00 - 10.00 credit -> +3.00
 *   Feb 4   the customer reverses one January call: 12 calls, 2.00 past the credit -> 1.00 back on the next invoice
 */
import { randomUUID } from 'node:crypto';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createReratingActivities } from '../../activities/rerating';
import type { Database } from '../../store/database';
import { insertRerate } from '../../store/rerates';
import { insertReversalEvents } from '../../store/reversals';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'rl_calls', name: 'Calls', event_type: 'rl.call', aggregation: 'count' });
});

afterAll(async () => {
  await db?.destroy();
});

const january = { start: '2027-01-01T00:00:00.000Z', end: '2027-02-01T00:00:00.000Z' };
const february = { start: '2027-02-01T00:00:00.000Z', end: '2027-03-01T00:00:00.000Z' };
const march = { start: '2027-03-01T00:00:00.000Z', end: '2027-04-01T00:00:00.000Z' };
const money = (value: string | number) => Number(value).toFixed(2);

async function close(subscriptionId: string, customerId: string, plan: { id: string; charges: unknown }, period: { start: string; end: string }) {
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId, customerId, periodStart: new Date(period.start), periodEnd: new Date(period.end), planId: plan.id, charges: plan.charges as never }),
  );
}

async function requestRerate(target: { invoiceId: string; subscriptionId: string; customerId: string }, includeLateUsage: boolean) {
  const id = randomUUID();
  await db.transaction((trx) =>
    insertRerate(trx, { id, invoiceId: target.invoiceId, subscriptionId: target.subscriptionId, customerId: target.customerId, requestedBy: 'finance', reason: 'audit', correctedPlanId: null, includeLateUsage }),
  );
  const activities = createReratingActivities(db);
  return { id, activities, proposed: await activities.proposeRerate({ rerateId: id }) };
}

async function rerate(target: { invoiceId: string; subscriptionId: string; customerId: string }, includeLateUsage: boolean) {
  const id = randomUUID();
  await db.transaction((trx) =>
    insertRerate(trx, { id, invoiceId: target.invoiceId, subscriptionId: target.subscriptionId, customerId: target.customerId, requestedBy: 'finance', reason: 'audit', correctedPlanId: null, includeLateUsage }),
  );
  const activities = createReratingActivities(db);
  const proposed = await activities.proposeRerate({ rerateId: id });
  if (proposed.status !== 'proposed') return proposed;
  await activities.recordRerateDecision({ rerateId: id, approved: true, by: 'finance', reason: 'ok' });
  return activities.finalizeRerate({ rerateId: id });
}

/** January billed 10.00 (8 calls inside the 10.00 credit), paid; 5 late calls stamped Jan 20. */
async function januaryWithLateCalls(name: string) {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, {
    code: `rl-${name}`,
    billing_interval: 'P1M',
    flat_fee: '10.00',
    charges: [{ metricCode: 'rl_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never,
    settings: { disputeWindow: 'P90D', creditBucket: '10.00' },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  const calls = (prefix: string, count: number, at: string) =>
    insertUsageEvents(db, Array.from({ length: count }, (_, i) => ({ customerId: customer.id, eventId: `${prefix}-${i}`, eventType: 'rl.call', occurredAt: new Date(at), properties: {} })));
  await calls(name, 8, '2027-01-15T00:00:00Z');
  await close(subscription.id, customer.id, plan, january);
  const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  await db('payments').insert({ invoice_id: invoice.invoiceId, attempt: 1, status: 'succeeded', amount: '10.00', currency: 'USD', idempotency_key: `payment:${invoice.invoiceId}:1`, gateway_charge_id: `ch_${name}` });
  await db('invoices').where({ id: invoice.invoiceId }).update({ status: 'paid' });
  await calls(`${name}-late`, 5, '2027-01-20T00:00:00Z');
  return { invoiceId: invoice.invoiceId, subscriptionId: subscription.id as string, customerId: customer.id as string, plan };
}

test('a late-usage proposal is stale once a reversal of its period was credited against the usage without the late calls', async () => {
  const target = await januaryWithLateCalls('late-race');
  const { id, activities, proposed } = await requestRerate(target, true);
  expect(proposed).toMatchObject({ status: 'proposed', total: '3.00' });
  await activities.recordRerateDecision({ rerateId: id, approved: true, by: 'finance', reason: 'ok' });
  // Before it is carried out, a January call is reversed and the next invoice credits it: 8 calls were inside the
  // credit, so nothing. Carried out now, the proposal would bill 13 calls (3.00) for 12 that stand.
  await insertReversalEvents(db, [{ customerId: target.customerId, eventId: 'late-race-0-reversal', eventType: 'rl.call', occurredAt: new Date('2027-02-04T00:00:00Z'), properties: {}, reversesEventId: 'late-race-0' }]);
  await close(target.subscriptionId, target.customerId, target.plan, february);
  await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: target.subscriptionId, kind: 'period', flatFeePeriod: march, usagePeriod: february });
  await expect(activities.finalizeRerate({ rerateId: id })).rejects.toMatchObject({ type: 'rerate_proposal_stale' });
  // Asked again: 12 calls, 2.00 past the credit.
  expect(await rerate(target, true)).toMatchObject({ status: 'finalized', outcome: 'adjustment', total: '2.00' });
});

test('a reversal still owed when late calls are billed is counted against the usage with them, as it will be credited', async () => {
  const target = await januaryWithLateCalls('owed-late');
  await insertReversalEvents(db, [{ customerId: target.customerId, eventId: 'owed-late-0-reversal', eventType: 'rl.call', occurredAt: new Date('2027-02-04T00:00:00Z'), properties: {}, reversesEventId: 'owed-late-0' }]);
  // 13 calls billed once this is carried out, the reversed one credited by the next invoice: 3.00 now, -1.00 then.
  expect(await rerate(target, true)).toMatchObject({ status: 'finalized', outcome: 'adjustment', total: '3.00' });
  await close(target.subscriptionId, target.customerId, target.plan, february);
  const next = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: target.subscriptionId, kind: 'period', flatFeePeriod: march, usagePeriod: february });
  expect(next.total).toBe('9.00');
  expect(await rerate(target, true)).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
});

test.each([
  ['a January call', 'closed', ''],
  ['one of the late calls the re-rating billed', 'late', '-late'],
])('%s reversed after a late-usage re-rating is credited against the usage billed with the late calls', async (_what, name, reversedPrefix) => {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, {
    code: `rl-${name}`,
    billing_interval: 'P1M',
    flat_fee: '10.00',
    charges: [{ metricCode: 'rl_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never,
    settings: { disputeWindow: 'P90D', creditBucket: '10.00' },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  const calls = (prefix: string, count: number, at: string) =>
    insertUsageEvents(db, Array.from({ length: count }, (_, i) => ({ customerId: customer.id, eventId: `${prefix}-${i}`, eventType: 'rl.call', occurredAt: new Date(at), properties: {} })));
  await calls(name, 8, '2027-01-15T00:00:00Z');
  await close(subscription.id, customer.id, plan, january);
  const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  expect(invoice.total).toBe('10.00');
  await db('payments').insert({ invoice_id: invoice.invoiceId, attempt: 1, status: 'succeeded', amount: '10.00', currency: 'USD', idempotency_key: `payment:${invoice.invoiceId}:1`, gateway_charge_id: `ch_${name}` });
  await db('invoices').where({ id: invoice.invoiceId }).update({ status: 'paid' });
  const target = { invoiceId: invoice.invoiceId, subscriptionId: subscription.id as string, customerId: customer.id as string };

  await calls(`${name}-late`, 5, '2027-01-20T00:00:00Z');
  expect(await rerate(target, true)).toMatchObject({ status: 'finalized', outcome: 'adjustment', total: '3.00' });

  await insertReversalEvents(db, [{ customerId: customer.id, eventId: `${name}${reversedPrefix}-0-reversal`, eventType: 'rl.call', occurredAt: new Date('2027-02-04T00:00:00Z'), properties: {}, reversesEventId: `${name}${reversedPrefix}-0` }]);
  await close(subscription.id, customer.id, plan, february);
  const next = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: march, usagePeriod: february });
  const lines = await db('invoice_lines').where({ invoice_id: next.invoiceId }).orderBy('position');
  const reversalCredit = money(lines.filter((line) => line.breakdown?.reversal).reduce((sum, line) => sum + Number(line.amount), 0));
  expect({ total: next.total, reversalCredit }).toEqual({ total: '9.00', reversalCredit: '-1.00' });
  // January now: 10.00 + 3.00 - 1.00 = 12.00 = fee + 12 calls - 10.00 credit: nothing left to correct.
  expect(await rerate(target, true)).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
});
