/**
 * A refund the gateway refuses must not lose the customer's money. Before, the refused refund voided its credit
 * note: a finance refund was simply gone, and a credit note for outcomes reversed after the subscription ended was
 * voided while its reversals stayed marked credited, so nothing ever gave that credit back. Now the credit note
 * stays issued and its amount becomes the customer's wallet credit (a goodwill grant keyed by the credit note).
 * The sandbox card `pm_sandbox_refund_declined` charges fine and refuses every refund (docs/payments.md).
 */
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { toDecimal } from '../../domain/money';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { InvoiceRow } from '../../store/invoices';
import { creditReversalsOfSubscription } from '../../store/reversal-credit-notes';
import { cancelSubscriptionUpdate } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';
import { insertCustomer } from '../support/fixtures';

const stack = useApiStack();

/** The customer's wallet credit in a currency: grants with their source and remaining amount. */
async function walletCredit(customerId: string, currency = 'USD'): Promise<Array<{ source: string; remaining: string }>> {
  const rows = await stack.db('wallet_grants as g').join('wallets as w', 'w.id', 'g.wallet_id').where({ 'w.customer_id': customerId, 'w.currency': currency }).select('g.source', 'g.remaining');
  return rows.map((row: { source: string; remaining: string }) => ({ source: row.source, remaining: Number(row.remaining).toFixed(2) }));
}

test('the sandbox card pm_sandbox_refund_declined charges fine and refuses every refund, moving nothing', async () => {
  const gateway = new SandboxGateway(stack.db);
  const charge = await gateway.charge({ idempotencyKey: `payment:${randomUUID()}:1`, paymentMethod: 'pm_sandbox_refund_declined', amount: toDecimal('5.00'), currency: 'USD', reference: randomUUID() });
  expect(charge.outcome).toBe('succeeded');
  const request = { idempotencyKey: `refund:${randomUUID()}`, chargeId: charge.chargeId, amount: charge.amount, currency: 'USD', reason: 'test' };
  expect(await gateway.refund(request)).toEqual({ outcome: 'failed', refundId: null, failureCode: 'refund_declined' });
  expect(await gateway.refund(request)).toEqual({ outcome: 'failed', refundId: null, failureCode: 'refund_declined' });
  expect(await stack.db('sandbox_gateway_refunds').where({ charge_id: charge.chargeId })).toEqual([]);
});

test('a refund request the gateway refuses keeps its credit note and gives the amount to the customer as credit', async () => {
  const customer = await insertCustomer(stack.db, { payment_method: 'pm_sandbox_refund_declined' });
  const [invoice] = await stack.db<InvoiceRow>('invoices')
    .insert({
      number: `INV-R${randomUUID().slice(0, 8)}`,
      customer_id: customer.id,
      kind: 'period',
      status: 'open',
      currency: 'USD',
      period_start: new Date('2030-03-01T00:00:00Z'),
      period_end: new Date('2030-04-01T00:00:00Z'),
      total: '29.00',
      finalized_at: new Date(),
    })
    .returning('*');
  const { chargeInvoice } = createActivities({ db: stack.db, gateway: new SandboxGateway(stack.db) });
  expect(await chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });

  const refused = await stack.api.call('POST', `/v1/invoices/${invoice.id}/refunds`, { amount: '10.00', reason: 'service outage' });
  expect(refused.status).toBe(201);
  expect(refused.json).toMatchObject({ total: '10.00', refund: { status: 'failed', failure_code: 'refund_declined' } });
  // Before: the credit note was void and the customer got nothing (no cash, no credit).
  expect({ creditNote: refused.json.status, credit: await walletCredit(customer.id) }).toEqual({
    creditNote: 'paid',
    credit: [{ source: 'goodwill', remaining: '10.00' }],
  });
  // The credit note still counts against the invoice: the 10.00 cannot also be refunded in cash later.
  const listing = await stack.api.call('GET', `/v1/invoices/${invoice.id}/refunds`);
  expect(listing.json).toMatchObject({ amount_paid: '29.00', amount_refunded: '10.00', amount_refundable: '19.00' });
  const failed = await stack.db('outbox').where({ event_type: 'refund.failed', aggregate_id: invoice.id }).first();
  expect(failed.payload).toMatchObject({ failureCode: 'refund_declined', creditedToWallet: '10.00' });
});

test('a reversal credit note whose refund the gateway refuses stays issued, and the customer gets the credit', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'resolutions', name: 'Resolutions', event_type: 'task.resolved', aggregation: 'count' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'per-resolution', name: 'Per resolution', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', dispute_window: 'P30D',
    charges: [{ metric_code: 'resolutions', display_name: 'Resolutions', price: { model: 'per_unit', unitPrice: '2.00' } }],
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'oscorp', name: 'Oscorp', currency: 'USD', payment_method: 'pm_sandbox_refund_declined' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'per-resolution', start_at: '2034-03-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  // Timeline (UTC, 2034), 2.00 per resolution:
  //   Mar 26   five resolutions (10.00); the customer cancels at the period end
  //   Apr 1    closing invoice 10.00, paid with pm_sandbox_refund_declined; the subscription has ended
  //   Apr 3    two resolutions reversed: a credit note of 4.00, whose refund the gateway refuses
  await stack.skipTo('2034-03-27T00:00:00Z');
  const events = ['1', '2', '3', '4', '5'].map((n) => ({ id: `oscorp-${n}`, customer: 'oscorp', type: 'task.resolved', timestamp: '2034-03-26T00:00:00Z', properties: {} }));
  expect((await stack.api.call('POST', '/v1/events', { events })).json).toMatchObject({ accepted: 5 });
  await stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`).executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'test', requestedBy: 'test' }] });
  const closing = await eventually(async () => {
    await stack.skipTo('2034-04-03T00:00:00Z');
    return stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'closing', status: 'paid' }).first();
  }, 'the paid closing invoice');
  expect(closing.total).toBe('10.000000000000');

  const reversals = ['1', '2'].map((n) => ({ id: `oscorp-r${n}`, customer: 'oscorp', type: 'task.resolved', timestamp: '2034-04-03T00:00:00Z', reverses: `oscorp-${n}`, properties: {} }));
  expect((await stack.api.call('POST', '/v1/events', { events: reversals })).json).toMatchObject({ accepted: 2 });
  const refunds = await stack.db('refunds').where({ invoice_id: closing.id }).select('amount', 'status', 'failure_code');
  expect(refunds).toEqual([{ amount: '4.000000000000', status: 'failed', failure_code: 'refund_declined' }]);
  const notes = await stack.db('invoices').where({ kind: 'credit_note', credited_invoice_id: closing.id });
  // Before: the note was void, its reversals stayed marked credited, and the 4.00 was owed by nothing.
  expect({ notes: notes.map((note: InvoiceRow) => [Number(note.total).toFixed(2), note.status]), credit: await walletCredit(customer.json.id) }).toEqual({
    notes: [['4.00', 'paid']],
    credit: [{ source: 'goodwill', remaining: '4.00' }],
  });
  // Later reversals are refunded only for what the payment still covers: the refused 4.00 went back as credit.
  const finance = await stack.api.call('POST', `/v1/invoices/${closing.id}/refunds`, { amount: '2.00', reason: 'goodwill' });
  expect(finance.json).toMatchObject({ status: 'paid', refund: { status: 'failed' } });
  const more = ['3', '4', '5'].map((n) => ({ id: `oscorp-r${n}`, customer: 'oscorp', type: 'task.resolved', timestamp: '2034-04-03T00:00:00Z', reverses: `oscorp-${n}`, properties: {} }));
  expect((await stack.api.call('POST', '/v1/events', { events: more })).json).toMatchObject({ accepted: 3 });
  const given = await stack.db('refunds').where({ invoice_id: closing.id }).orderBy('created_at').select('amount');
  // 10.00 paid: 4.00 and 2.00 given as credit, so the 6.00 note is refunded (here: credited) for the 4.00 left.
  expect(given.map((row: { amount: string }) => Number(row.amount).toFixed(2))).toEqual(['4.00', '2.00', '4.00']);
  expect(await walletCredit(customer.json.id)).toEqual([
    { source: 'goodwill', remaining: '4.00' },
    { source: 'goodwill', remaining: '2.00' },
    { source: 'goodwill', remaining: '4.00' },
  ]);
  // Reversals are credited exactly once: a second pass (the janitor's) issues nothing more.
  expect(await creditReversalsOfSubscription(stack.db, subscriptionId)).toEqual([]);
  expect(await stack.db('invoices').where({ kind: 'credit_note', credited_invoice_id: closing.id })).toHaveLength(3);
});
