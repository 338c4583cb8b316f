/**
 * A usage close claims only the event types its plan meters, in its own period. So a customer's event of a type one
 * of their subscriptions prices, stamped where none of them prices it, is never billed: before the subscription that
 * prices it starts (another subscription, pricing other types, already covering that time), or after a plan change
 * to a plan that does not meter it. Ingestion judged coverage by time alone (the first start, the ends) and accepted
 * it (200): stored, in no invoice, and shown as late usage of the other subscription, which never bills it. It is now
 * refused with the code of where it falls. Usage of the old plan's time, sent after the change, is still billed.
 * API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

test('an event of a type priced only by a later subscription or an earlier plan is refused where nothing prices it', async () => {
  for (const [code, type] of [['np_calls', 'np.calls'], ['np_seats', 'np.storage']]) {
    expect((await stack.api.call('POST', '/v1/metrics', { code, name: code, event_type: type, aggregation: 'sum', property: 'n' })).status).toBe(201);
  }
  const plan = async (code: string, metrics: string[]) =>
    expect(
      (await stack.api.call('POST', '/v1/plans', { code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '0', usage_grace_period: 'PT1H', charges: metrics.map((metric_code) => ({ metric_code, price: { model: 'per_unit', unitPrice: '1.00' } })) })).status,
    ).toBe(201);
  await plan('np-both', ['np_calls', 'np_seats']);
  await plan('np-calls', ['np_calls']);
  await plan('np-storage', ['np_seats']);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'np', name: 'NP', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const event = (id: string, type: string, timestamp: string, n: number) => ({ id, customer: 'np', type, timestamp, properties: { n } });

  // 2035: A on "np-both" (calls and storage) from Mar 1; Mar 15 A changes at once to "np-calls", then B on
  // "np-storage" is booked from Jun 1. Mar 20: storage stamped Mar 10 (A's old plan prices it: accepted, late), storage stamped
  // Mar 18 (priced until Mar 15 and again from Jun 1: refused), calls stamped Mar 18 (accepted), and telemetry, a
  // type no plan prices (stored as before: it bills nothing, so it is not pending late usage either).
  const a = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'np-both', start_at: '2035-03-01T00:00:00Z' });
  await stack.skipTo('2035-03-15T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${a.json.id}/plan-change`, { plan_code: 'np-calls', effective: 'immediate' }, { 'Idempotency-Key': 'np-change' })).status).toBe(200);
  await eventually(async () => stack.db('plan_changes').where({ subscription_id: a.json.id }).first(), 'the plan change');
  // Booked once A no longer meters storage (two subscriptions of a customer may not meter one metric at once).
  expect((await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'np-storage', start_at: '2035-06-01T00:00:00Z' })).status).toBe(201);
  await stack.skipTo('2035-03-20T00:00:00Z');

  const sent = await stack.api.call('POST', '/v1/events', {
    events: [event('storage-old-plan', 'np.storage', '2035-03-10T00:00:00Z', 3), event('storage-new-plan', 'np.storage', '2035-03-18T00:00:00Z', 5), event('calls', 'np.calls', '2035-03-18T00:00:00Z', 7), event('telemetry', 'np.telemetry', '2035-03-18T00:00:00Z', 1)],
  });
  expect(sent.json).toMatchObject({ accepted: 3, rejected: 1, errors: [{ index: 1, code: 'timestamp_between_subscriptions' }] });
  expect(sent.json.errors[0].detail).toContain('2035-06-01T00:00:00.000Z');

  // Before B starts, on A's new plan: storage stamped Apr 10 is refused (priced again only from Jun 1).
  await stack.skipTo('2035-04-11T00:00:00Z');
  const before = await stack.api.call('POST', '/v1/events', event('storage-before-b', 'np.storage', '2035-04-10T00:00:00Z', 11));
  expect(before.status).toBe(422);
  expect(before.json).toMatchObject({ code: 'batch_rejected', errors: [{ code: 'timestamp_between_subscriptions' }] });
  expect(await stack.db('usage_events').whereIn('event_id', ['storage-new-plan', 'storage-before-b'])).toEqual([]);

  // Every accepted event is billed or visibly pending: March's rest bills the 7 calls; the storage of the old plan's
  // stretch, closed at the change before it arrived, waits in the late-usage list for a re-rating of that stretch.
  const lines = await eventually(async () => {
    const rows = await stack.db<InvoiceRow>('invoices').where({ subscription_id: a.json.id });
    const usage = await stack.db<InvoiceLineRow>('invoice_lines').whereIn('invoice_id', rows.map((row) => row.id)).andWhere({ kind: 'usage' }).andWhere('quantity', '>', 0);
    return usage.length ? usage : undefined;
  }, 'the calls of March billed');
  expect(lines.map((line) => [line.metric_code, Number(line.quantity)])).toEqual([['np_calls', 7]]);
  const late = await stack.api.call('GET', `/v1/subscriptions/${a.json.id}/late-usage`);
  expect(late.json.data.map((event: { id: string }) => event.id)).toEqual(['storage-old-plan']);
});

test('the late-usage list shows only what a re-rating of the closed period would bill', async () => {
  // 2036: on "nl-calls" from Jan 1 | Feb 2 (January closed): calls stamped Jan 20 (late: a re-rating bills them) and
  // telemetry stamped Jan 20, a type the plan does not meter (stored, bills nothing: before, listed as pending).
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'nl_calls', name: 'Calls', event_type: 'nl.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/plans', { code: 'nl-calls', name: 'Calls', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', usage_grace_period: 'PT1H', charges: [{ metric_code: 'nl_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] })).status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'nl', name: 'NL', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'nl-calls', start_at: '2036-01-01T00:00:00Z' });
  await stack.skipTo('2036-02-02T00:00:00Z');
  await eventually(async () => stack.db('usage_period_closures').where({ subscription_id: subscription.json.id }).first(), "January's close");
  const late = (id: string, type: string) => ({ id, customer: 'nl', type, timestamp: '2036-01-20T00:00:00Z', properties: { n: 4 } });
  expect((await stack.api.call('POST', '/v1/events', { events: [late('late-calls', 'nl.calls'), late('telemetry', 'nl.telemetry')] })).json).toMatchObject({ accepted: 2 });

  const listed = await stack.api.call('GET', `/v1/subscriptions/${subscription.json.id}/late-usage`);
  expect(listed.json.data.map((event: { id: string }) => event.id)).toEqual(['late-calls']);
});
