/**
 * Two re-ratings of one invoice, both proposed before either is carried out (finance asked twice: a retry without
 * Idempotency-Key after a timeout, or two people fixing the same price). Each proposal is the difference to what
 * was invoiced when it was computed, so carrying out both would credit (or bill) the same difference twice. The
 * first one carried out wins; the other is refused as stale, and a new re-rating finds nothing left to do.
 * And a credit that the refund rules refuse when it is carried out fails for good instead of retrying forever.
 */
import { randomUUID } from 'node:crypto';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createReratingActivities } from '../../activities/rerating';
import { issueCreditNote } from '../../store/credit-notes';
import type { Database } from '../../store/database';
import { toDecimal } from '../../domain/money';
import { insertRerate } from '../../store/rerates';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'race_calls', name: 'Calls', event_type: 'race.call', aggregation: 'count' });
});

afterAll(async () => {
  await db?.destroy();
});

const callsAt = (unitPrice: string) => [{ metricCode: 'race_calls', price: { model: 'per_unit', unitPrice } }] as never;
const january = { start: '2027-01-01T00:00:00.000Z', end: '2027-02-01T00:00:00.000Z' };
const february = { start: '2027-02-01T00:00:00.000Z', end: '2027-03-01T00:00:00.000Z' };

function calls(customerId: string, prefix: string, count: number, at: string) {
  return insertUsageEvents(db, Array.from({ length: count }, (_, i) => ({ customerId, eventId: `${prefix}-${i}`, eventType: 'race.call', occurredAt: new Date(at), properties: {} })));
}

/** 10.00 a month + 0.10 a call; 100 calls in January, invoiced on Feb 1 (20.00) and paid by card. */
async function paidJanuary(name: string) {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, { code: `race-${name}`, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('0.10') });
  const cheaper = await insertPlan(db, { code: `race-${name}`, version: 2, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('0.08') });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  await calls(customer.id, name, 100, '2027-01-15T00:00:00Z');
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(january.start), periodEnd: new Date(january.end), planId: plan.id, charges: plan.charges as never }),
  );
  const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  expect(invoice.total).toBe('20.00');
  await db('payments').insert({ invoice_id: invoice.invoiceId, attempt: 1, status: 'succeeded', amount: '20.00', currency: 'USD', idempotency_key: `payment:${invoice.invoiceId}:1`, gateway_charge_id: `ch_${name}` });
  await db('invoices').where({ id: invoice.invoiceId }).update({ status: 'paid' });
  return { customerId: customer.id as string, subscriptionId: subscription.id as string, invoiceId: invoice.invoiceId, cheaper };
}

async function requestRerate(target: { invoiceId: string; subscriptionId: string; customerId: string }, terms: { correctedPlanId?: string; includeLateUsage?: boolean }) {
  const id = randomUUID();
  await db.transaction((trx) =>
    insertRerate(trx, { id, ...target, requestedBy: 'finance', reason: 'audit', correctedPlanId: terms.correctedPlanId ?? null, includeLateUsage: terms.includeLateUsage ?? false }),
  );
  return id;
}

const activities = () => createReratingActivities(db);

test('two credit proposals for one invoice, both approved: the customer is credited once', async () => {
  const target = await paidJanuary('credit');
  // Two requests for the same corrected price (0.08): 100 × 0.08 = 8.00 against 10.00 billed, each proposes −2.00.
  const first = await requestRerate(target, { correctedPlanId: target.cheaper.id });
  const second = await requestRerate(target, { correctedPlanId: target.cheaper.id });
  expect(await activities().proposeRerate({ rerateId: first })).toMatchObject({ status: 'proposed', outcome: 'credit', total: '-2.00' });
  expect(await activities().proposeRerate({ rerateId: second })).toMatchObject({ status: 'proposed', outcome: 'credit', total: '-2.00' });
  await activities().recordRerateDecision({ rerateId: first, approved: true, by: 'finance', reason: 'ok' });
  await activities().recordRerateDecision({ rerateId: second, approved: true, by: 'finance', reason: 'ok' });

  expect(await activities().finalizeRerate({ rerateId: first })).toMatchObject({ status: 'finalized', resultInvoiceId: expect.any(String) });
  // The second proposal was computed before the first was carried out: it no longer states the difference.
  await expect(activities().finalizeRerate({ rerateId: second })).rejects.toMatchObject({ type: 'rerate_proposal_stale', nonRetryable: true });

  const creditNotes = await db('invoices').where({ credited_invoice_id: target.invoiceId }).pluck('total');
  expect(creditNotes.map((total) => Number(total).toFixed(2))).toEqual(['2.00']);
  expect((await db('rerates').where({ id: second }).first()).status).toBe('approved'); // nothing carried out
  // Asked again, the re-rating builds on the one carried out: nothing left to do.
  const again = await requestRerate(target, { correctedPlanId: target.cheaper.id });
  expect(await activities().proposeRerate({ rerateId: again })).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
});

test('two late-usage proposals for one invoice, both approved: the late usage is billed once', async () => {
  const target = await paidJanuary('late');
  await calls(target.customerId, 'late-arrivals', 20, '2027-01-20T00:00:00Z'); // after January closed
  // Each proposes +2.00 (20 × 0.10) for the same 20 late events.
  const first = await requestRerate(target, { includeLateUsage: true });
  const second = await requestRerate(target, { includeLateUsage: true });
  expect(await activities().proposeRerate({ rerateId: first })).toMatchObject({ outcome: 'adjustment', total: '2.00' });
  expect(await activities().proposeRerate({ rerateId: second })).toMatchObject({ outcome: 'adjustment', total: '2.00' });
  await activities().recordRerateDecision({ rerateId: first, approved: true, by: 'finance', reason: 'ok' });
  await activities().recordRerateDecision({ rerateId: second, approved: true, by: 'finance', reason: 'ok' });

  // Carried out at the same time: the second waits for the first and then finds its proposal stale.
  const [one, two] = await Promise.allSettled([activities().finalizeRerate({ rerateId: first }), activities().finalizeRerate({ rerateId: second })]);
  expect([one.status, two.status].sort()).toEqual(['fulfilled', 'rejected']);
  const refused = [one, two].find((result): result is PromiseRejectedResult => result.status === 'rejected')!;
  expect(refused.reason).toMatchObject({ type: 'rerate_proposal_stale' });

  const adjustments = await db('invoices').where({ subscription_id: target.subscriptionId, kind: 'adjustment' }).pluck('total');
  expect(adjustments.map((total) => Number(total).toFixed(2))).toEqual(['2.00']);
});

test('a credit proposal carried out after finance refunded the invoice in full is refused for good, not retried forever', async () => {
  const target = await paidJanuary('refunded');
  const rerate = await requestRerate(target, { correctedPlanId: target.cheaper.id });
  expect(await activities().proposeRerate({ rerateId: rerate })).toMatchObject({ outcome: 'credit', total: '-2.00' });
  await activities().recordRerateDecision({ rerateId: rerate, approved: true, by: 'finance', reason: 'ok' });
  // Meanwhile finance refunds the whole invoice (POST /v1/invoices/:id/refunds): nothing is left to refund.
  await issueCreditNote(db, { invoiceId: target.invoiceId, amount: toDecimal('20.00'), reason: 'service outage', idempotencyKey: 'outage', actor: 'finance' });
  // The same refusal on every retry: a typed, non-retryable failure (the workflow shows rerate_failed).
  await expect(activities().finalizeRerate({ rerateId: rerate })).rejects.toMatchObject({ type: 'refund_exceeds_paid', nonRetryable: true });
  expect((await db('invoices').where({ credited_invoice_id: target.invoiceId }).pluck('total')).map((total) => Number(total).toFixed(2))).toEqual(['20.00']);
});
