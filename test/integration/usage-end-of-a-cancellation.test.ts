/**
 * Where a customer's billable usage stops, as ingestion sees it, must be where the closing invoice stops billing:
 * every event accepted is billed once, or refused at the edge.
 *
 * Before, three paths accepted usage no invoice would ever bill:
 * - a cancellation now: until the closing invoice was issued (after the usage grace window) the subscription still
 *   looked active, so usage stamped after the cancellation was accepted, and the closing invoice stopped at the
 *   cancellation;
 * - a gap between a subscription that ended and a later one the customer has scheduled: the end check applied only
 *   once every subscription of the customer had ended;
 * - a retention offer still open at the period's end holds the handover; usage during the hold was accepted, and
 *   when the offer was declined the closing invoice stopped at the period's end.
 * API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const calls = (customer: string, id: string, timestamp: string | Date, n: number) => ({
  id,
  customer,
  type: 'api.calls',
  timestamp: typeof timestamp === 'string' ? timestamp : timestamp.toISOString(),
  properties: { n },
});

beforeAll(async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'calls',
    name: 'Calls',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '0.10' } }],
  });
  expect(plan.status).toBe(201);
});

async function subscribe(externalId: string, startAt: string, planCode = 'calls'): Promise<string> {
  const existing = await stack.db('customers').where({ external_id: externalId }).first();
  const customerId: string =
    existing?.id ?? (await stack.api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' })).json.id;
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customerId, plan_code: planCode, start_at: startAt });
  expect(subscription.status).toBe(201);
  return subscription.json.id;
}

async function closingUsage(subscriptionId: string): Promise<[number, string][]> {
  const closing = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'closing' }).first(), 'the closing invoice');
  return (await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: closing.id, kind: 'usage' })).map((line) => [Number(line.quantity), Number(line.amount).toFixed(2)]);
}

test('a cancellation now: usage stamped after it is refused at once, not accepted until the closing invoice', async () => {
  const subscriptionId = await subscribe('wallace', '2034-01-01T00:00:00Z');
  await stack.skipTo('2034-01-10T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('wallace', 'before', '2034-01-09T00:00:00Z', 100))).json).toMatchObject({ accepted: 1 });

  const canceled = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'now', reason: 'test' });
  expect(canceled.json).toMatchObject({ status: 'canceled' });
  const canceledAt = new Date(canceled.json.effective_at);

  // Inside the usage grace window: one event stamped before the cancellation (late, billed), one after it (refused).
  const late = await stack.api.call('POST', '/v1/events', {
    events: [calls('wallace', 'late', new Date(canceledAt.getTime() - 1_000), 10), calls('wallace', 'after', new Date(canceledAt.getTime() + 1_000), 5)],
  });
  expect(late.json).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 1, code: 'timestamp_after_subscription_end' }] });
  expect(await stack.db('usage_events').where({ event_id: 'after' })).toEqual([]);

  await stack.skipTo('2034-01-10T02:00:00Z');
  expect(await closingUsage(subscriptionId)).toEqual([[110, '11.00']]);
});

test('between a subscription that ended and a later one, usage is refused: no period of either could bill it', async () => {
  const first = await subscribe('deckard', '2034-04-01T00:00:00Z');
  await stack.skipTo('2034-04-10T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${first}/cancel`, { at: 'now', reason: 'test' })).json).toMatchObject({ status: 'canceled' });
  const second = await subscribe('deckard', '2034-05-01T00:00:00Z');
  await stack.skipTo('2034-04-20T00:00:00Z');

  const gap = await stack.api.call('POST', '/v1/events', calls('deckard', 'in-the-gap', '2034-04-20T00:00:00Z', 7));
  expect(gap.status).toBe(422);
  expect(gap.json).toMatchObject({ code: 'batch_rejected', errors: [{ code: 'timestamp_between_subscriptions' }] });
  expect(await stack.db('usage_events').where({ event_id: 'in-the-gap' })).toEqual([]);

  // The later subscription's usage is accepted and billed by its own period.
  await stack.skipTo('2034-05-02T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('deckard', 'in-may', '2034-05-01T12:00:00Z', 3))).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2034-06-01T02:00:00Z');
  const may = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: second }).andWhere('period_start', new Date('2034-06-01T00:00:00Z')).first(),
    "June's invoice (May's usage)",
  );
  const usage = (await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: may.id, kind: 'usage' })).map((line) => [Number(line.quantity), Number(line.amount).toFixed(2)]);
  expect(usage).toEqual([[3, '0.30']]);
});

test('a retention offer declined after it held the period end: usage during the hold is billed on the closing invoice', async () => {
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'calls-retained',
    name: 'Calls (retention offer)',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '0.10' } }],
  });
  expect(plan.status).toBe(201);
  // The API does not take retention offers yet: set on the plan version before any subscription reads it.
  await stack.db('plans')
    .where({ id: plan.json.id })
    .update({ settings: stack.db.raw(`settings || ?::jsonb`, [JSON.stringify({ retentionOffer: { percentOff: '50', periods: 1, expiresAfter: 'P7D' } })]) });
  const subscriptionId = await subscribe('rachael', '2034-07-01T00:00:00Z', 'calls-retained');

  await stack.skipTo('2034-07-28T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'test' })).json).toMatchObject({ status: 'retention_offered' });
  expect((await stack.api.call('POST', '/v1/events', calls('rachael', 'july', '2034-07-28T00:00:00Z', 100))).json).toMatchObject({ accepted: 1 });

  // Aug 1 passes with the offer open: the period end is held. Aug 2 the customer uses the service, then declines.
  await stack.skipTo('2034-08-02T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('rachael', 'held', '2034-08-01T12:00:00Z', 20))).json).toMatchObject({ accepted: 1 });
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/retention/decline`, {})).status).toBe(200);
  const afterDecline = await stack.api.call('POST', '/v1/events', calls('rachael', 'after', new Date(stack.now().getTime() + 1_000), 5));
  expect(afterDecline.json).toMatchObject({ code: 'batch_rejected', errors: [{ code: 'timestamp_after_subscription_end' }] });

  await stack.skipTo('2034-08-02T02:00:00Z');
  expect(await closingUsage(subscriptionId)).toEqual([[120, '12.00']]);
});

/**
 * Ingestion takes timestamps up to 5 minutes ahead of its clock (client clock skew) and refuses usage past the end only
 * once the end is recorded. Oct 10 00:00 (0.10 a call): 100 calls stamped Oct 9 and 40 stamped 00:04 are accepted;
 * a cancellation now follows at once (effective 00:00). The closing invoice bills 140 calls = 14.00. Before, it billed
 * 100 = 10.00: the 40 accepted calls were claimed by no close and listed nowhere (not even as late usage).
 */
test('a cancellation now: usage accepted before it but stamped just after it (a client clock ahead) is billed on the closing invoice', async () => {
  const subscriptionId = await subscribe('tyrell', '2034-10-01T00:00:00Z');
  await stack.skipTo('2034-10-10T00:00:00Z');
  const ahead = new Date(stack.now().getTime() + 4 * 60_000);
  const sent = await stack.api.call('POST', '/v1/events', { events: [calls('tyrell', 'on-the-9th', '2034-10-09T00:00:00Z', 100), calls('tyrell', 'clock-ahead', ahead, 40)] });
  expect(sent.json).toMatchObject({ accepted: 2 });
  const canceled = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'now', reason: 'test' });
  expect(new Date(canceled.json.effective_at).getTime()).toBeLessThan(ahead.getTime());

  await stack.skipTo('2034-10-10T02:00:00Z');
  expect(await closingUsage(subscriptionId)).toEqual([[140, '14.00']]);
});

/**
 * A cancellation at the period's end accepted in the usage grace window after a boundary (Feb 1 00:30, January's PT1H
 * window) is answered effective Mar 1, and February's usage is still accepted and billed: 100 calls stamped Feb 1
 * 00:20, sent at 00:30, bill 10.00 on the closing invoice. Before, the row still showed January until February's
 * invoice was written, ingestion read the pending cancellation's end from it and refused the calls
 * (timestamp_after_subscription_end, end 2035-02-01): 10.00 never billed.
 */
test('a cancellation at the period end asked in the grace window after a boundary: the new period usage is accepted and billed', async () => {
  const subscriptionId = await subscribe('sebastian', '2035-01-01T00:00:00Z');
  await stack.skipTo('2035-02-01T00:30:00Z');
  const canceled = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'test' });
  expect(canceled.json).toMatchObject({ status: 'pending_cancellation', effective_at: '2035-03-01T00:00:00.000Z' });
  expect((await stack.api.call('POST', '/v1/events', calls('sebastian', 'first-of-february', '2035-02-01T00:20:00Z', 100))).json).toMatchObject({ accepted: 1 });

  await stack.skipTo('2035-03-01T02:00:00Z');
  expect(await closingUsage(subscriptionId)).toEqual([[100, '10.00']]);
});

/**
 * A cancellation at the period's end asked less than 5 minutes before that end: usage accepted before it may be stamped
 * just past the end (a client clock ahead). Apr 30 23:57 (0.10 a call): 100 calls stamped Apr 20 and 30 stamped May 1
 * 00:01 are accepted; then the cancellation, effective May 1. The closing invoice bills 130 calls = 13.00. Before, it
 * billed 100 = 10.00: the end was not recorded when the request was answered, so the last close stopped at it and the
 * 30 accepted calls were claimed by no close.
 */
test('a cancellation at the period end asked minutes before it: usage accepted before it but stamped just past the end is billed on the closing invoice', async () => {
  const subscriptionId = await subscribe('roy', '2035-04-01T00:00:00Z');
  await stack.skipTo('2035-04-30T23:57:00Z');
  const ahead = new Date(stack.now().getTime() + 4 * 60_000);
  const sent = await stack.api.call('POST', '/v1/events', { events: [calls('roy', 'on-the-20th', '2035-04-20T00:00:00Z', 100), calls('roy', 'clock-ahead', ahead, 30)] });
  expect(sent.json).toMatchObject({ accepted: 2 });
  const canceled = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'test' });
  expect(canceled.json).toMatchObject({ status: 'pending_cancellation', effective_at: '2035-05-01T00:00:00.000Z' });
  // From the answer on, usage stamped past the end is refused, as before.
  const after = await stack.api.call('POST', '/v1/events', calls('roy', 'after-the-answer', ahead, 5));
  expect(after.json).toMatchObject({ code: 'batch_rejected', errors: [{ code: 'timestamp_after_subscription_end' }] });

  await stack.skipTo('2035-05-01T02:00:00Z');
  expect(await closingUsage(subscriptionId)).toEqual([[130, '13.00']]);
});

const minutes = (customer: string, id: string, timestamp: string | Date, n: number) => ({ ...calls(customer, id, timestamp, n), type: 'voice.minutes' });

async function usageLines(invoice: InvoiceRow): Promise<[number, string][]> {
  return (await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id, kind: 'usage' }).orderBy('amount')).map((line) => [Number(line.quantity), Number(line.amount).toFixed(2)]);
}

/**
 * A plan change that drops an event type (calls and minutes at 0.10 and 0.50 -> calls only): minutes accepted before
 * it but stamped just after it (a client clock ahead) are billed by the close of the plan that priced them when they
 * were accepted, exactly once, and never left unbilled.
 * - Immediate, Jun 10 00:00: 100 calls and 10 minutes of Jun 9, 4 minutes stamped 00:03, then the change. The
 *   proration invoice bills 100 calls = 10.00 and 14 minutes = 7.00. Before: 10 minutes = 5.00, the 4 claimed by no close.
 * - At the period end (Jul 1), scheduled before: Jun 30 23:57, 10 minutes of Jun 20 and 4 stamped Jul 1 00:00. July's
 *   invoice bills June's 14 minutes = 7.00. Before: 10 minutes = 5.00.
 */
test('a plan change that drops an event type: usage of that type accepted before it but stamped just after it is billed under the plan that priced it', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'minutes', name: 'Minutes', event_type: 'voice.minutes', aggregation: 'sum', property: 'n' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'calls-and-minutes',
    name: 'Calls and minutes',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    usage_grace_period: 'PT1H',
    charges: [
      { metric_code: 'calls', price: { model: 'per_unit', unitPrice: '0.10' } },
      { metric_code: 'minutes', price: { model: 'per_unit', unitPrice: '0.50' } },
    ],
  });
  expect(plan.status).toBe(201);
  const now = await subscribe('leon', '2035-06-01T00:00:00Z', 'calls-and-minutes');
  const scheduled = await subscribe('pris', '2035-06-01T00:00:00Z', 'calls-and-minutes');
  await stack.skipTo('2035-06-10T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${scheduled}/plan-change`, { plan_code: 'calls', effective: 'period_end' }, { 'Idempotency-Key': 'pris-to-calls' })).status).toBe(200);

  const sent = await stack.api.call('POST', '/v1/events', {
    events: [calls('leon', 'leon-calls', '2035-06-09T00:00:00Z', 100), minutes('leon', 'leon-minutes', '2035-06-09T00:00:00Z', 10), minutes('leon', 'leon-ahead', new Date(stack.now().getTime() + 3 * 60_000), 4)],
  });
  expect(sent.json).toMatchObject({ accepted: 3 });
  const change = await stack.api.call('POST', `/v1/subscriptions/${now}/plan-change`, { plan_code: 'calls', effective: 'immediate' }, { 'Idempotency-Key': 'leon-to-calls' });
  expect(change.status).toBe(200);
  const proration = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: now, kind: 'proration' }).first(), 'the proration invoice');
  expect(await usageLines(proration)).toEqual([[14, '7.00'], [100, '10.00']]);

  await stack.skipTo('2035-06-30T23:57:00Z');
  const ahead = new Date(stack.now().getTime() + 3 * 60_000);
  expect((await stack.api.call('POST', '/v1/events', { events: [minutes('pris', 'pris-minutes', '2035-06-20T00:00:00Z', 10), minutes('pris', 'pris-ahead', ahead, 4)] })).json).toMatchObject({ accepted: 2 });
  await stack.skipTo('2035-07-01T02:00:00Z');
  const july = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: scheduled, kind: 'period' }).andWhere('period_start', new Date('2035-07-01T00:00:00Z')).first(),
    "July's invoice (June's usage)",
  );
  expect(await usageLines(july)).toEqual([[0, '0.00'], [14, '7.00']]); // calls: none in June
  // Nothing of either customer is left pending: every accepted event was billed.
  for (const customer of ['leon', 'pris']) {
    const { id } = await stack.db('customers').where({ external_id: customer }).first();
    expect((await stack.api.call('GET', `/v1/customers/${id}/uncovered-usage`)).json.data).toEqual([]);
  }
});
