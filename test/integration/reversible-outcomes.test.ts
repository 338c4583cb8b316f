/**
 * Reversible outcomes (issue 14, point 3) through the real API, workflow and Postgres on a time-skipping server:
 * a reversal inside the plan's dispute window takes its outcome back (its value, not just its count) before the
 * period closes; every other reversal is refused with its own code.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { cancelSubscriptionUpdate } from '../../workflows/definitions';
import { eventually } from '../support/eventually';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

const skipTo = (instant: string): Promise<void> => stack.skipTo(instant);

const deal = (id: string, customer: string, timestamp: string, value: string) => ({ id, customer, type: 'deal.closed', timestamp, properties: { value } });
const reversal = (id: string, customer: string, timestamp: string, reverses: string) => ({ id, customer, type: 'deal.closed', timestamp, reverses, properties: {} });

test('a reversal in the open period takes the outcome and its value back; the others are refused with their codes', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'closed_deals', name: 'Closed deals', event_type: 'deal.closed', aggregation: 'count', property: 'value' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'outcomes', name: 'Outcomes', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', dispute_window: 'P14D',
    charges: [{ metric_code: 'closed_deals', display_name: 'Closed deals (2 %)', price: { model: 'percentage', rate: '0.02' } }],
  });
  expect(plan).toMatchObject({ status: 201, json: { dispute_window: 'P14D' } });
  const acme = await stack.api.call('POST', '/v1/customers', { external_id: 'acme', name: 'Acme', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const other = await stack.api.call('POST', '/v1/customers', { external_id: 'other', name: 'Other', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: acme.json.id, plan_code: 'outcomes', start_at: '2031-03-01T00:00:00Z' });
  expect((await stack.api.call('POST', '/v1/subscriptions', { customer_id: other.json.id, plan_code: 'outcomes', start_at: '2031-03-01T00:00:00Z' })).status).toBe(201);
  const handle = stack.env.client.workflow.getHandle(`subscription:${subscription.json.id}`);

  // Timeline (UTC, 2031), 2 % of each closed deal's value, disputes accepted for 14 days after the deal:
  //   Mar 5..7   deals d1 1,000.00, d2 500.00, d3 2,000.00 (acme); o1 300.00 (other)
  //   Mar 10     r1 reverses d2 (accepted); r2 reverses d2 again; r3 reverses an unknown id; r4 reverses other's o1
  //   Mar 25     r5 reverses d1: its window closed on Mar 19
  //   Apr 1      INV: 2 % × (1,000.00 + 2,000.00) = 60.00 (d2's 500.00 no longer counts: 10.00 taken back)
  await skipTo('2031-03-08T00:00:00Z');
  const deals = await stack.api.call('POST', '/v1/events', {
    events: [deal('d1', 'acme', '2031-03-05T00:00:00Z', '1000.00'), deal('d2', 'acme', '2031-03-06T00:00:00Z', '500.00'), deal('d3', 'acme', '2031-03-07T00:00:00Z', '2000.00'), deal('o1', 'other', '2031-03-07T00:00:00Z', '300.00')],
  });
  expect(deals.json).toMatchObject({ accepted: 4, rejected: 0 });
  expect((await stack.api.call('GET', `/v1/subscriptions/${subscription.json.id}/usage`)).json.projected.usage_total).toBe('70.00');

  await skipTo('2031-03-10T00:00:00Z');
  const reversals = await stack.api.call('POST', '/v1/events', {
    events: [
      reversal('r1', 'acme', '2031-03-10T00:00:00Z', 'd2'),
      reversal('r2', 'acme', '2031-03-10T00:00:00Z', 'd2'),
      reversal('r3', 'acme', '2031-03-10T00:00:00Z', 'nope'),
      reversal('r4', 'acme', '2031-03-10T00:00:00Z', 'o1'),
    ],
  });
  expect(reversals.json).toMatchObject({
    accepted: 1,
    rejected: 3,
    errors: [
      { index: 1, code: 'event_already_reversed' },
      { index: 2, code: 'reversed_event_not_found' },
      { index: 3, code: 'reversed_event_of_another_customer' },
    ],
  });
  // Resending the accepted reversal is a duplicate of nothing new: the original is already reversed.
  const again = await stack.api.call('POST', '/v1/events', reversal('r1b', 'acme', '2031-03-10T00:00:00Z', 'd2'));
  expect(again.json.errors).toEqual([expect.objectContaining({ code: 'event_already_reversed' })]);
  expect((await stack.api.call('GET', `/v1/subscriptions/${subscription.json.id}/usage`)).json.projected.usage_total).toBe('60.00');

  await skipTo('2031-03-25T00:00:00Z');
  const late = await stack.api.call('POST', '/v1/events', reversal('r5', 'acme', '2031-03-25T00:00:00Z', 'd1'));
  expect(late.json.errors).toEqual([expect.objectContaining({ code: 'dispute_window_closed' })]);

  await skipTo('2031-03-28T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', deal('d4', 'acme', '2031-03-28T00:00:00Z', '1000.00'))).json.accepted).toBe(1);

  // Across the boundary: March is invoiced on Apr 1 (d1, d3, d4: 2 % × 4,000.00 = 80.00); on Apr 2 d4 is
  // reversed (inside its window, until Apr 11), so the next invoice credits its 20.00, exactly once:
  //   Apr 3      d5 5,000.00 (April)
  //   May 1      closing INV (canceled at period end): 2 % × 5,000.00 = 100.00 − 20.00 reversed = 80.00
  await skipTo('2031-04-02T00:00:00Z');
  const april = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscription.json.id, kind: 'period' }).andWhere('period_start', '2031-04-01T00:00:00Z').first();
  const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: april!.id, kind: 'usage' });
  expect(lines.map((line) => [line.description, Number(line.quantity), line.amount])).toEqual([['Closed deals (2 %)', 3, '80.000000000000']]);
  expect(lines[0].breakdown).toMatchObject({ eventCount: 3, valueTotal: '4000' });
  expect((await stack.api.call('POST', '/v1/events', reversal('r6', 'acme', '2031-04-02T00:00:00Z', 'd4'))).json.accepted).toBe(1);
  await skipTo('2031-04-03T00:00:00Z');
  await stack.api.call('POST', '/v1/events', deal('d5', 'acme', '2031-04-03T00:00:00Z', '5000.00'));
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'test', requestedBy: 'test' }] });
  await handle.result();

  const closing = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscription.json.id, kind: 'closing' }).first();
  expect(closing!.total).toBe('80.000000000000');
  const closingLines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: closing!.id }).orderBy('position');
  expect(closingLines.map((line) => [line.description, line.amount, line.period_start.toISOString().slice(0, 10)])).toEqual([
    ['Closed deals (2 %)', '100.000000000000', '2031-04-01'],
    ['Closed deals (2 %) (reversed outcomes)', '-20.000000000000', '2031-03-01'],
  ]);
  expect(await stack.db('usage_events').where({ event_id: 'r6' }).select('reversal_credited_on')).toEqual([{ reversal_credited_on: 'closing:2031-04-01T00:00:00.000Z' }]);
});

test('a reversal takes the outcome out of the running totals too: the preview and the entitlement answer count it no more', async () => {
  // A per-unit outcome (not a percentage) is read from the running totals (store/rollups.ts), which a reversal must
  // update: before, the preview kept billing a reversed ticket until the period closed. Last in this file, after the
  // previous test awaited a workflow's result: server time has moved on by itself, and the API's clock (which stamps
  // `startAt` here) must follow it, or the events land in a period the workflow has already closed (a preview of 0.00).
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'resolved_tickets', name: 'Resolved tickets', event_type: 'ticket.resolved', aggregation: 'count' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'tickets', name: 'Tickets', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', dispute_window: 'P14D',
    charges: [{ metric_code: 'resolved_tickets', price: { model: 'per_unit', unitPrice: '1.50' } }],
  });
  expect(plan.status).toBe(201);
  const zeta = await stack.api.call('POST', '/v1/customers', { external_id: 'zeta', name: 'Zeta', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const startAt = new Date(stack.now().getTime() + 3_600_000).toISOString();
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: zeta.json.id, plan_code: 'tickets', start_at: startAt });
  expect(subscription.status).toBe(201);
  await skipTo(new Date(new Date(startAt).getTime() + 86_400_000).toISOString());
  const at = (hours: number): string => new Date(new Date(startAt).getTime() + hours * 3_600_000).toISOString();
  const ticket = (id: string, hours: number) => ({ id, customer: 'zeta', type: 'ticket.resolved', timestamp: at(hours), properties: {} });
  expect((await stack.api.call('POST', '/v1/events', { events: [ticket('t1', 1), ticket('t2', 2), ticket('t3', 3)] })).json).toMatchObject({ accepted: 3 });
  const usage = async () => (await stack.api.call('GET', `/v1/subscriptions/${subscription.json.id}/usage`)).json.projected?.usage_total;
  // The preview projects once the workflow has opened the period (it records the period's bounds).
  await eventually(async () => (await usage()) ?? undefined, 'the first period opened', { timeoutMs: 20_000, intervalMs: 100 });
  expect(await usage()).toBe('4.50'); // 3 × 1.50, read from the totals (seeded by this first read)

  expect((await stack.api.call('POST', '/v1/events', { id: 't2-reopened', customer: 'zeta', type: 'ticket.resolved', timestamp: at(5), reverses: 't2', properties: {} })).json).toMatchObject({ accepted: 1 });
  expect(await usage()).toBe('3.00'); // t2 counts no more
  expect((await stack.api.call('POST', '/v1/events', ticket('t4', 6))).json).toMatchObject({ accepted: 1 });
  expect(await usage()).toBe('4.50'); // t1, t3, t4
  await stack.env.client.workflow.getHandle(`subscription:${subscription.json.id}`).terminate('test done');
});
