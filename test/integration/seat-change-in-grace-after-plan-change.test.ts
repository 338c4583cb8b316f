/**
 * An immediate plan change inside the grace window after a boundary closes the new period's first stretch at once
 * (its proration invoice), before the closed period's own close at the end of the window. A seat change of the
 * closed period sent on time, inside the window but after the plan change, was billed on the closed period's
 * invoice and then lost: the stretch's close had kept a level without it, the next stretch opened from that level,
 * and every later period after it (October billed 3 seats, not 5). API, workflow, time-skipping server, Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

test('a seat change sent in the grace window after a plan change there reaches the periods after it', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'seats', name: 'Seats', event_type: 'seat.changed', aggregation: 'prorated_sum', property: 'delta' })).status).toBe(201);
  for (const code of ['seats-basic', 'seats-plus']) {
    const plan = await stack.api.call('POST', '/v1/plans', {
      code,
      name: code,
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: '0',
      usage_grace_period: 'PT1H',
      charges: [{ metric_code: 'seats', price: { model: 'per_unit', unitPrice: '10.00' } }],
    });
    expect(plan.status).toBe(201);
  }
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'initech', name: 'Initech', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'seats-basic', start_at: '2034-09-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  const invoiceOf = (periodStart: string) =>
    eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', new Date(periodStart)).first(), `the invoice of ${periodStart}`);
  const seatLines = async (invoice: InvoiceRow) =>
    (await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id, kind: 'usage' }).orderBy('position')).map((line) => [Number(line.quantity).toFixed(4), Number(line.amount).toFixed(2)]);

  //   Sep 1          +3 seats (sent Sep 5)
  //   Oct 1 00:10    immediate change to seats-plus, inside September's grace window: [Oct 1, Oct 1 00:10) closes now
  //   Oct 1 00:20    +2 seats stamped Sep 30 00:00 (on time: September's grace window runs to 01:00)
  //   Oct 1 01:00    September closes: 3 seats for 29 days, 5 for 1 = 3.0667 -> 30.67 (Oct 1 invoice)
  //   Oct 1 00:10 - Nov 1: 5 seats x (31 days - 10 min) / 31 days = 4.9989 -> 49.99 on November's invoice (it billed
  //   3 seats: 29.99); the 10 minutes before the change billed 3 seats, the +2 having arrived after their close
  await stack.skipTo('2034-09-05T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { id: 'seats-1', customer: 'initech', type: 'seat.changed', timestamp: '2034-09-01T00:00:00Z', properties: { delta: 3 } })).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2034-10-01T00:10:00Z');
  const changed = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'seats-plus', effective: 'immediate' }, { 'Idempotency-Key': 'initech-up' });
  expect(changed.status).toBe(200);
  await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'proration' }).first(), 'the proration invoice');
  await stack.skipTo('2034-10-01T00:20:00Z');
  expect((await stack.api.call('POST', '/v1/events', { id: 'seats-2', customer: 'initech', type: 'seat.changed', timestamp: '2034-09-30T00:00:00Z', properties: { delta: 2 } })).json).toMatchObject({ accepted: 1 });

  await stack.skipTo('2034-10-01T02:00:00Z');
  expect(await seatLines(await invoiceOf('2034-10-01T00:00:00Z'))).toEqual([['3.0667', '30.67']]);
  const preview = await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
  expect(preview.json.usage.map((row: { opening_level: string }) => row.opening_level)).toEqual(['5']);
  await stack.skipTo('2034-11-01T02:00:00Z');
  const november = await seatLines(await invoiceOf('2034-11-01T00:00:00Z'));
  expect(november).toEqual([[expect.stringMatching(/^4\.998\d$/), '49.99']]);
});
