/**
 * A usage block (suspended in dunning, or paused under the reject policy) refuses usage stamped from the block's
 * start on, judged by the event's time, not by when the request arrives. Before, it refused every event of the
 * customer while the block lasted: usage stamped before the pause, which the period (moved later by the pause)
 * bills, was refused with usage_blocked when sent a day after the pause began, and a client drops a 4xx: 100.00 of
 * usage never billed. Usage stamped during the block is still refused. API, workflow, time-skipping server, Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';
import { insertPlan } from '../support/fixtures';

const stack = useApiStack();

test('usage stamped before a pause that refuses usage, sent during it, is accepted and billed; usage of the pause is refused', async () => {
  // 2033: Mar 1 start | Mar 9 400 calls happen | Mar 20 pause until Apr 10 (usage refused) | Mar 21 the Mar 9 calls
  // are sent (accepted), and 50 calls stamped Mar 20 12:00 (refused) | Apr 10 resume | Apr 12 100 calls stamped
  // Apr 11 (accepted) and 30 stamped Mar 25, in the pause (refused: sent late, still usage of the pause) | the
  // period ends 21 days later, Apr 22 | its invoice: 500 calls x 0.25 = 125.00.
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'ub_calls', name: 'Calls', event_type: 'ub.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  await insertPlan(stack.db, { code: 'ub', billing_interval: 'P1M', flat_fee: '0', charges: [{ metricCode: 'ub_calls', price: { model: 'per_unit', unitPrice: '0.25' } }] as never, settings: { usageWhilePaused: 'reject' } });
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'ub', name: 'Blocked', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'ub', start_at: '2033-03-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'ub', type: 'ub.calls', timestamp, properties: { n } });

  await stack.skipTo('2033-03-20T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/pause`, { until: '2033-04-10T00:00:00Z' }, { 'Idempotency-Key': 'pause' })).status).toBe(200);
  await eventually(async () => (await stack.db('subscriptions').where({ id: subscriptionId }).first()).usage_blocked || undefined, 'the usage block');
  await stack.skipTo('2033-03-21T00:00:00Z');

  const sent = await stack.api.call('POST', '/v1/events', { events: [calls('before-pause', '2033-03-09T00:00:00Z', 400), calls('during-pause', '2033-03-20T12:00:00Z', 50)] });
  expect(sent.json).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 1, code: 'usage_blocked' }] });

  await stack.skipTo('2033-04-12T00:00:00Z');
  await eventually(async () => ((await stack.db('subscriptions').where({ id: subscriptionId }).first()).usage_blocked ? undefined : true), 'the resume');
  const afterResume = await stack.api.call('POST', '/v1/events', { events: [calls('after-resume', '2033-04-11T00:00:00Z', 100), calls('of-the-pause', '2033-03-25T00:00:00Z', 30)] });
  expect(afterResume.json).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 1, code: 'usage_blocked' }] });

  await stack.skipTo('2033-04-23T02:00:00Z');
  const invoice = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('total', '>', 0).first(), 'the period invoice');
  const usage = (await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id, kind: 'usage' })).map((line) => [Number(line.quantity), Number(line.amount).toFixed(2)]);
  expect(usage).toEqual([[500, '125.00']]);
});

/**
 * A reversal (`reverses`) of a negative correction adds the correction's value back at the correction's time: where a
 * block refuses usage then, it is refused like the increase it is. A correction can be stamped inside a block only
 * when sent before the block began (up to 5 minutes ahead of the clock, or while the block was being recorded).
 * Before, the reversal was accepted: 50 calls and a -10 correction stamped 4 minutes ahead, a pause begun in
 * between, +10 stamped with the correction refused (usage_blocked) but the correction's reversal accepted, and the
 * paused period billed 50 x 0.25 = 12.50 where it billed 10.00.
 */
test('a reversal of a correction stamped inside a pause is refused like the increase it is', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'ubr_calls', name: 'Calls', event_type: 'ubr.calls', aggregation: 'sum', property: 'n', allow_negative: true })).status).toBe(201);
  await insertPlan(stack.db, { code: 'ubr', billing_interval: 'P1M', flat_fee: '0', charges: [{ metricCode: 'ubr_calls', price: { model: 'per_unit', unitPrice: '0.25' } }] as never, settings: { usageWhilePaused: 'reject', disputeWindow: 'P30D' } });
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'ubr', name: 'Blocked reversal', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'ubr', start_at: '2033-05-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'ubr', type: 'ubr.calls', timestamp, properties: { n } });

  await stack.skipTo('2033-05-20T00:00:00Z');
  const fixAt = new Date(stack.now().getTime() + 4 * 60_000).toISOString();
  expect((await stack.api.call('POST', '/v1/events', { events: [calls('ubr-used', '2033-05-09T00:00:00Z', 50), calls('ubr-fix', fixAt, -10)] })).json).toMatchObject({ accepted: 2 });
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/pause`, { until: '2033-06-10T00:00:00Z' }, { 'Idempotency-Key': 'pause-ubr' })).status).toBe(200);
  await eventually(async () => (await stack.db('subscriptions').where({ id: subscriptionId }).first()).usage_blocked || undefined, 'the usage block');

  const increase = await stack.api.call('POST', '/v1/events', calls('ubr-plus', fixAt, 10));
  expect(increase.json.errors).toEqual([expect.objectContaining({ index: 0, code: 'usage_blocked' })]);
  const reversal = await stack.api.call('POST', '/v1/events', { id: 'ubr-fix-back', customer: 'ubr', type: 'ubr.calls', timestamp: fixAt, properties: {}, reverses: 'ubr-fix' });
  expect(reversal.status).toBe(422);
  expect(reversal.json.errors).toEqual([expect.objectContaining({ index: 0, code: 'usage_blocked' })]);
  expect((await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage`)).json.projected.usage_total).toBe('10.00');
});
