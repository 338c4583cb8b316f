/**
 * The refunds of credit notes for outcomes reversed after the subscription ended (docs/pricing.md): against an
 * invoice still unpaid (the charge that pays it collects the total less the note, so nothing is refunded), against
 * an invoice that has less left to refund than the note (nothing was refunded, not even what was left), and beside
 * a refund finance requests at the same moment (both were refunded in full, more than was paid). API, workflow,
 * time-skipping server and a real Postgres.
 */
import { retryDunningOnNewPaymentMethod } from '../../api/dunning-retry';
import type { InvoiceRow } from '../../store/invoices';
import { cancelSubscriptionUpdate } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const task = (id: string, timestamp: string) => ({ id, customer: 'umbrella', type: 'task.resolved', timestamp, properties: {} });

test('a reversal credit note on an unpaid closing invoice is taken off its charge, not refunded', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'resolutions', name: 'Resolutions', event_type: 'task.resolved', aggregation: 'count' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'per-resolution', name: 'Per resolution', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', dispute_window: 'P30D',
    charges: [{ metric_code: 'resolutions', display_name: 'Resolutions', price: { model: 'per_unit', unitPrice: '2.00' } }],
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'umbrella', name: 'Umbrella', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'per-resolution', start_at: '2033-03-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  const handle = stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`);

  // Timeline (UTC, 2033), 2.00 per resolution:
  //   Mar 20   five resolutions (10.00); the customer cancels at the period end; the card starts declining
  //   Apr 1    closing invoice 10.00, declined: dunning (the subscription has ended: no invoice will follow)
  //   Apr 1    two resolutions reversed: a credit note of 4.00 against the unpaid closing invoice
  //   Apr 3    a working card: dunning's next attempt collects 6.00 (10.00 less the note); the note is settled
  await stack.skipTo('2033-03-21T00:00:00Z');
  const events = ['t1', 't2', 't3', 't4', 't5'].map((id) => task(id, '2033-03-20T00:00:00Z'));
  expect((await stack.api.call('POST', '/v1/events', { events })).json).toMatchObject({ accepted: 5 });
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'test', requestedBy: 'test' }] });
  await stack.db('customers').where({ id: customer.json.id }).update({ payment_method: 'pm_sandbox_declined' });
  await stack.skipTo('2033-04-01T06:00:00Z');
  const closing = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'closing', status: 'open' }).first(),
    'the declined closing invoice',
  );
  expect(closing.total).toBe('10.000000000000');

  const reversals = ['t1', 't2'].map((reverses) => ({ id: `r-${reverses}`, customer: 'umbrella', type: 'task.resolved', timestamp: '2033-04-01T06:00:00Z', reverses, properties: {} }));
  expect((await stack.api.call('POST', '/v1/events', { events: reversals })).json).toMatchObject({ accepted: 2 });
  const notes = await stack.db<InvoiceRow>('invoices').where({ kind: 'credit_note', subscription_id: subscriptionId });
  expect(notes.map((note) => [note.total, note.status])).toEqual([['4.000000000000', 'open']]);

  await stack.skipTo('2033-04-03T00:00:00Z');
  await stack.db('customers').where({ id: customer.json.id }).update({ payment_method: 'pm_sandbox_ok' });
  // Dunning goes on after the end (the workflow collects what it billed): a working card pays it at once.
  await retryDunningOnNewPaymentMethod(stack.db, stack.env.client)({ customerId: customer.json.id, paymentMethod: 'pm_sandbox_ok', previousPaymentMethod: 'pm_sandbox_declined' });
  await eventually(async () => stack.db<InvoiceRow>('invoices').where({ id: closing.id, status: 'paid' }).first(), 'the closing invoice paid');
  const charged = await stack.db('sandbox_gateway_charges').where({ reference: closing.id, status: 'succeeded' }).select('amount');
  expect(charged.map((charge: { amount: string }) => charge.amount)).toEqual(['6.000000000000']);
  // The charge took the note off: nothing is refunded, and the note is settled.
  expect(await stack.db('refunds').where({ invoice_id: closing.id }).select('credit_note_id')).toEqual([]);
  expect((await stack.db<InvoiceRow>('invoices').where({ id: notes[0].id }).first())!.status).toBe('paid');
});

/** A subscription whose closing invoice billed five resolutions (10.00) and was paid; it has ended. */
async function endedWithPaidClosingInvoice(externalId: string, startAt: string): Promise<{ customerId: string; closing: InvoiceRow }> {
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'per-resolution', start_at: startAt });
  const subscriptionId: string = subscription.json.id;
  // Late in the month: the reversals come inside the 30-day dispute window, after the subscription ended.
  const resolvedAt = new Date(new Date(startAt).getTime() + 25 * 86_400_000).toISOString();
  await stack.skipTo(new Date(new Date(startAt).getTime() + 26 * 86_400_000).toISOString());
  const events = ['1', '2', '3', '4', '5'].map((n) => ({ id: `${externalId}-${n}`, customer: externalId, type: 'task.resolved', timestamp: resolvedAt, properties: {} }));
  expect((await stack.api.call('POST', '/v1/events', { events })).json).toMatchObject({ accepted: 5 });
  await stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`).executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'test', requestedBy: 'test' }] });
  const closing = await eventually(async () => {
    await stack.skipTo(new Date(new Date(startAt).getTime() + 33 * 86_400_000).toISOString());
    return stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'closing', status: 'paid' }).first();
  }, 'the paid closing invoice');
  expect(closing.total).toBe('10.000000000000');
  return { customerId: customer.json.id, closing };
}

const reverse = (externalId: string, timestamp: string, ...numbers: string[]) =>
  numbers.map((n) => ({ id: `${externalId}-r${n}`, customer: externalId, type: 'task.resolved', timestamp, reverses: `${externalId}-${n}`, properties: {} }));
const refundsOf = (invoice: InvoiceRow) => stack.db('refunds').where({ invoice_id: invoice.id }).orderBy('created_at').select('amount', 'status');

test('a reversal credit note larger than what is left to refund is refunded in part, not left unrefunded', async () => {
  // May 2033: 10.00 paid on the closing invoice; finance refunds 8.00 of it; two resolutions (4.00) are reversed.
  const { closing } = await endedWithPaidClosingInvoice('wayne', '2033-05-01T00:00:00Z');
  const refund = await stack.api.call('POST', `/v1/invoices/${closing.id}/refunds`, { amount: '8.00', reason: 'goodwill' });
  expect(refund.status).toBe(201);
  expect((await stack.api.call('POST', '/v1/events', { events: reverse('wayne', '2033-06-03T00:00:00Z', '1', '2') })).json).toMatchObject({ accepted: 2 });
  // The 4.00 note is refunded for the 2.00 the payment still covers (before: nothing at all).
  expect(await refundsOf(closing)).toEqual([
    { amount: '8.000000000000', status: 'succeeded' },
    { amount: '2.000000000000', status: 'succeeded' },
  ]);
  const listing = await stack.api.call('GET', `/v1/invoices/${closing.id}/refunds`);
  expect(listing.json.amount_refundable).toBe('0.00');
});

test('a reversal credit note and a refund request at the same moment never give back more than was paid', async () => {
  // Jul 2033: 10.00 paid. The reversal's credit note (4.00) and a refund of all 10.00 race for the invoice: the
  // credit-note counter is held so that both are in flight at once.
  const { closing } = await endedWithPaidClosingInvoice('stark', '2033-07-01T00:00:00Z');
  const holder = await stack.db.transaction();
  try {
    await holder.raw(`INSERT INTO invoice_number_sequences (series, last_number) VALUES ('CN', 1) ON CONFLICT (series) DO UPDATE SET last_number = invoice_number_sequences.last_number`);
    const waitingOnLocks = async (count: number) =>
      eventually(async () => Number((await stack.db.raw("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'")).rows[0].n) >= count, `${count} waiting`);
    const reversal = stack.api.call('POST', '/v1/events', { events: reverse('stark', '2033-08-03T00:00:00Z', '1', '2') });
    await waitingOnLocks(1);
    const refund = stack.api.call('POST', `/v1/invoices/${closing.id}/refunds`, { amount: '10.00', reason: 'goodwill' });
    await waitingOnLocks(2);
    await holder.rollback();
    const [reversed, refunded] = await Promise.all([reversal, refund]);
    expect(reversed.json).toMatchObject({ accepted: 2 });
    expect([refunded.status, refunded.json.code]).toEqual([422, 'refund_exceeds_paid']);
  } finally {
    if (!holder.isCompleted()) await holder.rollback();
  }
  expect(await refundsOf(closing)).toEqual([{ amount: '4.000000000000', status: 'succeeded' }]);
});
