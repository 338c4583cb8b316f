/**
 * A plan change scheduled for the period's end counts in the metered-overlap check from its instant on
 * (store/metered-overlaps.ts, migration 0720). Before, it lived only in the workflow until the boundary: a subscription
 * created meanwhile pricing the scheduled plan's event type was accepted, and from the boundary two subscriptions of
 * the customer priced it; the first close claimed the events, at its own plan's price.
 *
 *   so-other prices so.other; so-calls-b prices so.calls at 1.00; so-calls-c prices so.calls at 2.00 (P1M, grace PT1H)
 *   2034-01-01 S1 on so-other | Jan 10 S1 schedules so-calls-b for Feb 1; S2 asked on so-calls-c from now
 *   Feb 6: 3 calls stamped Feb 5 | S2's period [Jan 10, Feb 10) closes first, S1's [Feb 1, Mar 1) after
 *   expected: S2 refused 409 naming S1; February's 3 calls billed by S1 at 1.00 = 3.00
 *   before:   S2 accepted 201; the calls billed by S2 at 2.00 = 6.00, S1 billed none of them
 *
 * API, workflow, time-skipping server and a real Postgres.
 */
import { formatMoney, toDecimal } from '../../domain/money';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import type { SubscriptionRow } from '../../store/subscriptions';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';
import { insertPlan } from '../support/fixtures';

const stack = useApiStack();

beforeAll(async () => {
  for (const [code, type] of [['so_calls', 'so.calls'], ['so_other', 'so.other']]) {
    expect((await stack.api.call('POST', '/v1/metrics', { code, name: code, event_type: type, aggregation: 'count' })).status).toBe(201);
  }
  for (const [code, metric, unitPrice] of [['so-other', 'so_other', '1.00'], ['so-calls-b', 'so_calls', '1.00'], ['so-calls-c', 'so_calls', '2.00']]) {
    const charges = [{ metric_code: metric, price: { model: 'per_unit', unitPrice } }];
    expect((await stack.api.call('POST', '/v1/plans', { code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '0', usage_grace_period: 'PT1H', charges })).status).toBe(201);
  }
});

async function customer(externalId: string): Promise<string> {
  const created = await stack.api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  expect(created.status).toBe(201);
  return created.json.id;
}

const subscribe = (customerId: string, planCode: string, startAt?: string) =>
  stack.api.call('POST', '/v1/subscriptions', { customer_id: customerId, plan_code: planCode, ...(startAt ? { start_at: startAt } : {}) });

const scheduleCalls = (subscriptionId: string) => stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'so-calls-b', effective: 'period_end' });

const scheduledOnRow = async (subscriptionId: string) => {
  const row = (await stack.db<SubscriptionRow>('subscriptions').where({ id: subscriptionId }).first())!;
  return { planId: row.scheduled_change_plan_id, at: row.scheduled_change_at?.toISOString() ?? null };
};

/** The overlap refusal as the test compares it: status, code, the subscription named and the shared types. */
const refusal = (response: { status: number; json: Record<string, unknown> }) => [response.status, response.json.code, response.json.conflicting_subscription_id, response.json.event_types];

test("scheduling a plan that prices what another subscription prices from the period's end is refused (held before)", async () => {
  const customerId = await customer('so-held');
  const calling = await subscribe(customerId, 'so-calls-c', '2034-01-01T00:00:00Z');
  const other = await subscribe(customerId, 'so-other', '2034-01-01T00:00:00Z');
  expect([calling.status, other.status]).toEqual([201, 201]);

  expect(refusal(await scheduleCalls(other.json.id))).toEqual([409, 'metered_usage_overlap', calling.json.id, ['so.calls']]);
});

test('a subscription pricing the scheduled plan\'s event type is refused; the usage is billed once, by the scheduled plan', async () => {
  const customerId = await customer('so-race');
  const s1 = await subscribe(customerId, 'so-other', '2034-01-01T00:00:00Z');
  await stack.skipTo('2034-01-10T00:00:00Z');
  const scheduled = await scheduleCalls(s1.json.id);
  expect([scheduled.status, scheduled.json.effective_at]).toEqual([200, '2034-02-01T00:00:00.000Z']);
  const claim = await scheduledOnRow(s1.json.id);

  const s2 = await subscribe(customerId, 'so-calls-c');

  await stack.skipTo('2034-02-06T00:00:00Z');
  const calls = [1, 2, 3].map((n) => ({ id: `so-race-${n}`, customer: 'so-race', type: 'so.calls', timestamp: '2034-02-05T00:00:00Z', properties: {} }));
  expect((await stack.api.call('POST', '/v1/events', { events: calls })).json).toMatchObject({ accepted: 3 });
  await stack.skipTo('2034-03-01T02:00:00Z');
  const billed = await eventually(async () => {
    const invoices = await stack.db<InvoiceRow>('invoices as i').join('subscriptions as s', 's.id', 'i.subscription_id').where('s.customer_id', customerId).select('i.id', 'i.subscription_id');
    const lines = await stack.db<InvoiceLineRow>('invoice_lines').whereIn('invoice_id', invoices.map((invoice) => invoice.id)).andWhere({ metric_code: 'so_calls' }).andWhere('quantity', '>', 0);
    const s1Closed = await stack.db('usage_period_closures').where({ subscription_id: s1.json.id }).andWhere('period_end', '>=', new Date('2034-03-01T00:00:00Z')).first();
    const subscriptionOf = (line: InvoiceLineRow) => (invoices.find((invoice) => invoice.id === line.invoice_id)!.subscription_id === s1.json.id ? 'S1' : 'S2');
    return s1Closed && lines.map((line) => `${subscriptionOf(line)} ${Number(line.quantity)} calls ${formatMoney(toDecimal(line.amount), 'USD')}`);
  }, "S1's February close");

  expect({ claim, s2: refusal(s2), billed }).toEqual({
    claim: { planId: expect.any(String), at: '2034-02-01T00:00:00.000Z' },
    s2: [409, 'metered_usage_overlap', s1.json.id, ['so.calls']],
    billed: ['S1 3 calls 3.00'],
  });
});

test('a withdrawn scheduled change no longer counts: refused while scheduled, accepted once withdrawn', async () => {
  const customerId = await customer('so-withdrawn');
  const s1 = await subscribe(customerId, 'so-other', '2034-04-01T00:00:00Z');
  await stack.skipTo('2034-04-10T00:00:00Z');
  expect((await scheduleCalls(s1.json.id)).status).toBe(200);

  const whileScheduled = await subscribe(customerId, 'so-calls-c');
  const withdrawn = await stack.api.call('DELETE', `/v1/subscriptions/${s1.json.id}/scheduled-change`);
  const afterwards = await subscribe(customerId, 'so-calls-c');

  expect([refusal(whileScheduled), withdrawn.status, withdrawn.json, afterwards.status]).toEqual([[409, 'metered_usage_overlap', s1.json.id, ['so.calls']], 200, { withdrawn: true }, 201]);
  expect(await scheduledOnRow(s1.json.id)).toEqual({ planId: null, at: null });
});

test('a subscription canceled with a change scheduled: its usage end bounds the change, and the ended row forgets it', async () => {
  const customerId = await customer('so-canceled');
  const s1 = await subscribe(customerId, 'so-other', '2034-07-01T00:00:00Z');
  await stack.skipTo('2034-07-10T00:00:00Z');
  expect((await scheduleCalls(s1.json.id)).status).toBe(200);

  const whileScheduled = await subscribe(customerId, 'so-calls-c');
  const canceled = await stack.api.call('POST', `/v1/subscriptions/${s1.json.id}/cancel`, { at: 'now', reason: 'moving to calls' });
  const afterwards = await subscribe(customerId, 'so-calls-c');
  expect([refusal(whileScheduled), canceled.status, afterwards.status]).toEqual([[409, 'metered_usage_overlap', s1.json.id, ['so.calls']], 200, 201]);

  // Ended (after the closed usage's grace window): a win-back restart starts without the change, so the row drops it.
  await stack.skipTo('2034-07-10T02:00:00Z');
  await eventually(async () => (await stack.db<SubscriptionRow>('subscriptions').where({ id: s1.json.id }).first())!.status === 'canceled', 'S1 canceled');
  expect(await scheduledOnRow(s1.json.id)).toEqual({ planId: null, at: null });
});

test("a cancellation at the period's end: the scheduled change never takes effect, so nothing is refused for it", async () => {
  const customerId = await customer('so-pending');
  const s1 = await subscribe(customerId, 'so-other', '2034-08-01T00:00:00Z');
  await stack.skipTo('2034-08-10T00:00:00Z');
  expect((await scheduleCalls(s1.json.id)).status).toBe(200);
  expect((await stack.api.call('POST', `/v1/subscriptions/${s1.json.id}/cancel`, { at: 'period_end', reason: 'moving to calls' })).status).toBe(200);

  expect((await subscribe(customerId, 'so-calls-c', '2034-09-01T00:00:00Z')).status).toBe(201);
});

test('a win-back restart starts without the scheduled change: the restarted subscription claims none of it', async () => {
  // 2034-10: S1 on a plan with a win-back offer a day after the end; Oct 10 it schedules so-calls-b and is canceled
  // now; Oct 12 it accepts the win-back offer (restarted on its plan, the workflow holds no scheduled change); S2 on
  // so-calls-c is accepted: nothing of the restarted subscription prices so.calls.
  const settings = { winBackOffer: { sendAfter: 'P1D', expiresAfter: 'P7D' }, usageGracePeriod: 'PT1H' };
  await insertPlan(stack.db, { code: 'so-other-win-back', billing_interval: 'P1M', flat_fee: '0', settings, charges: [{ metricCode: 'so_other', price: { model: 'per_unit', unitPrice: '1.00' } }] as never });
  const customerId = await customer('so-win-back');
  const s1 = await subscribe(customerId, 'so-other-win-back', '2034-10-01T00:00:00Z');
  await stack.skipTo('2034-10-10T00:00:00Z');
  expect((await scheduleCalls(s1.json.id)).status).toBe(200);
  expect((await stack.api.call('POST', `/v1/subscriptions/${s1.json.id}/cancel`, { at: 'now', reason: 'trying calls' })).status).toBe(200);

  await stack.skipTo('2034-10-12T00:00:00Z');
  await eventually(async () => stack.db('customer_offers').where({ subscription_id: s1.json.id, kind: 'win_back' }).first(), 'the win-back offer');
  const restarted = await stack.api.call('POST', `/v1/subscriptions/${s1.json.id}/win-back/accept`);
  await eventually(async () => (await stack.db<SubscriptionRow>('subscriptions').where({ id: s1.json.id }).first())!.status === 'active', 'S1 restarted');
  const s2 = await subscribe(customerId, 'so-calls-c');

  expect([restarted.status, s2.status, await scheduledOnRow(s1.json.id)]).toEqual([200, 201, { planId: null, at: null }]);
});
