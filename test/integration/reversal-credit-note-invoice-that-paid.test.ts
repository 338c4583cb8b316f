/**
 * A reversal after the subscription ended becomes a credit note against an invoice that billed the outcome's period
 * (docs/pricing.md "When no later invoice comes"), refunded from that invoice's payment. Other invoices carry usage
 * lines of the period too and took only part of its money, and the note went against the newest of them:
 *   - a re-rating's adjustment, whose payment covered only the late events it billed: 2.00 of a 5.00 note refunded;
 *   - after threshold invoices had billed the period, the closing invoice that took no payment: nothing refunded.
 *
 * Timeline (2029), 1.00 a call, reversals accepted for 90 days:
 *   Jan 15  8 calls -> the closing invoice of Feb 1: 8.00, paid; the subscription has ended
 *   Feb 3   2 calls stamped Jan 20 arrive late; finance re-rates with late usage: adjustment invoice 2.00, paid
 *   Feb 10  5 January calls are reversed: a credit note of 5.00 against the closing invoice, refunded 5.00
 * Postgres only: the activities are called as the workflows call them.
 */
import { randomUUID } from 'node:crypto';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createReratingActivities } from '../../activities/rerating';
import { createThresholdActivities } from '../../activities/thresholds';
import type { Database } from '../../store/database';
import { insertRerate } from '../../store/rerates';
import { amountOwedAfterCreditNotes } from '../../store/credit-notes';
import type { InvoiceRow } from '../../store/invoices';
import { creditReversalsOfEndedSubscriptions } from '../../store/reversal-credit-notes';
import { pendingReversalCredits } from '../../store/reversal-credits';
import { insertReversalEvents } from '../../store/reversals';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createGrant, findWallet } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'ra_calls', name: 'Calls', event_type: 'ra.call', aggregation: 'count' });
});

afterAll(async () => {
  await db?.destroy();
});

const january = { start: '2029-01-01T00:00:00.000Z', end: '2029-02-01T00:00:00.000Z' };
const money = (value: string | number) => Number(value).toFixed(2);

async function paid(invoiceId: string, amount: string) {
  await db('payments').insert({ invoice_id: invoiceId, attempt: 1, status: 'succeeded', amount, currency: 'USD', idempotency_key: `payment:${invoiceId}:1`, gateway_charge_id: `ch_${invoiceId}` });
  await db('invoices').where({ id: invoiceId }).update({ status: 'paid' });
}

test('a reversal after the end is credited against the invoice that billed the period, not a later adjustment of it', async () => {
  const customer = await insertCustomer(db, { external_id: 'adjusted' });
  const plan = await insertPlan(db, {
    code: 'ra-calls',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metricCode: 'ra_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never,
    settings: { disputeWindow: 'P90D' },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:adjusted', start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  const calls = (prefix: string, count: number, at: string) =>
    insertUsageEvents(db, Array.from({ length: count }, (_, i) => ({ customerId: customer.id, eventId: `${prefix}-${i}`, eventType: 'ra.call', occurredAt: new Date(at), properties: {} })));

  await calls('jan', 8, '2029-01-15T00:00:00Z');
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(january.start), periodEnd: new Date(january.end), planId: plan.id, charges: plan.charges as never }),
  );
  const closing = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'closing', flatFeePeriod: null, usagePeriod: january });
  expect(closing.total).toBe('8.00');
  await paid(closing.invoiceId, '8.00');
  await db('subscriptions').where({ id: subscription.id }).update({ status: 'canceled' });

  // Two late calls, billed by a re-rating of the closing invoice: an adjustment invoice of 2.00, paid.
  await calls('late', 2, '2029-01-20T00:00:00Z');
  const rerateId = randomUUID();
  await db.transaction((trx) =>
    insertRerate(trx, { id: rerateId, invoiceId: closing.invoiceId, subscriptionId: subscription.id, customerId: customer.id, requestedBy: 'finance', reason: 'late calls', correctedPlanId: null, includeLateUsage: true }),
  );
  const rerating = createReratingActivities(db);
  expect(await rerating.proposeRerate({ rerateId })).toMatchObject({ status: 'proposed', total: '2.00' });
  await rerating.recordRerateDecision({ rerateId, approved: true, by: 'finance', reason: 'ok' });
  expect(await rerating.finalizeRerate({ rerateId })).toMatchObject({ status: 'finalized', outcome: 'adjustment' });
  const adjustment = await db('invoices').where({ subscription_id: subscription.id, kind: 'adjustment' }).first();
  await paid(adjustment.id, '2.00');

  // Five January calls reversed after the end: a credit note of 5.00, refunded in full from the 8.00 paid.
  await insertReversalEvents(
    db,
    Array.from({ length: 5 }, (_, i) => ({ customerId: customer.id, eventId: `jan-${i}-reversal`, eventType: 'ra.call', occurredAt: new Date('2029-02-10T00:00:00Z'), properties: {}, reversesEventId: `jan-${i}` })),
  );
  const issued = await creditReversalsOfEndedSubscriptions(db, [customer.id]);
  const credited = issued.map(({ creditNote, refund }) => ({
    against: creditNote.credited_invoice_id === closing.invoiceId ? 'closing invoice' : creditNote.credited_invoice_id === adjustment.id ? 'adjustment invoice' : creditNote.credited_invoice_id,
    note: money(creditNote.total),
    refunded: refund ? money(refund.amount) : null,
  }));
  expect(credited).toEqual([{ against: 'closing invoice', note: '5.00', refunded: '5.00' }]);
});

test('a reversal after the end of an outcome a threshold invoice billed is refunded from that invoice, not capped by the closing one', async () => {
  // Timeline (2029), 1.00 a call, a usage threshold at 5.00, reversals accepted for 90 days:
  //   Jan 15  8 calls; Jan 16 threshold invoice 8.00, paid
  //   Feb 1   closing invoice: 8.00 of January - 8.00 billed on the threshold invoice = 0.00 (nothing to collect)
  //   Feb 10  5 January calls reversed: a credit note of 5.00, refunded from the threshold invoice's 8.00 (before:
  //           against the closing invoice, which took no payment: nothing refunded, 5.00 owed to the customer)
  const customer = await insertCustomer(db, { external_id: 'thresholded' });
  const plan = await insertPlan(db, {
    code: 'ra-thresholds',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metricCode: 'ra_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never,
    settings: { disputeWindow: 'P90D', usageThresholds: { amounts: ['5.00'] } },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:thresholded', start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  await insertUsageEvents(db, Array.from({ length: 8 }, (_, i) => ({ customerId: customer.id, eventId: `th-${i}`, eventType: 'ra.call', occurredAt: new Date('2029-01-15T00:00:00Z'), properties: {} })));
  const threshold = await createThresholdActivities(db).createThresholdInvoice({ subscriptionId: subscription.id, usageStart: january.start, at: '2029-01-16T00:00:00.000Z', planId: plan.id });
  expect(threshold.invoice?.total).toBe('8.00');
  await paid(threshold.invoice!.invoiceId, '8.00');

  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(january.start), periodEnd: new Date(january.end), planId: plan.id, charges: plan.charges as never }),
  );
  const closing = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'closing', flatFeePeriod: null, usagePeriod: january });
  expect(closing.total).toBe('0.00');
  await db('invoices').where({ id: closing.invoiceId }).update({ status: 'paid' }); // nothing to collect: settled without a charge
  await db('subscriptions').where({ id: subscription.id }).update({ status: 'canceled' });

  await insertReversalEvents(
    db,
    Array.from({ length: 5 }, (_, i) => ({ customerId: customer.id, eventId: `th-${i}-reversal`, eventType: 'ra.call', occurredAt: new Date('2029-02-10T00:00:00Z'), properties: {}, reversesEventId: `th-${i}` })),
  );
  const issued = await creditReversalsOfEndedSubscriptions(db, [customer.id]);
  const credited = issued.map(({ creditNote, refund }) => ({
    against: creditNote.credited_invoice_id === closing.invoiceId ? 'closing invoice' : creditNote.credited_invoice_id === threshold.invoice!.invoiceId ? 'threshold invoice' : creditNote.credited_invoice_id,
    note: money(creditNote.total),
    refunded: refund ? money(refund.amount) : null,
  }));
  expect(credited).toEqual([{ against: 'threshold invoice', note: '5.00', refunded: '5.00' }]);
});

/**
 * An outcome whose invoice was never paid is not credited on the next invoice: the credit is taken off what that
 * invoice still owes, by a credit note against it (docs/pricing.md "Reversible outcomes"), as after the end.
 * Timeline (2029), 1.00 a call, reversals accepted for 90 days, the subscription going on:
 *   Jan 15  8 calls -> Feb 1 invoice 8.00: in dunning (open), or given up (uncollectible)
 *   Feb 10  5 January calls reversed; Feb 15 10 calls
 *   Mar 1   invoice: 10.00 (before: 10.00 - 5.00 = 5.00, five calls never paid given back on a paid invoice);
 *           a credit note of 5.00 against January's, which now owes 3.00
 */
for (const status of ['uncollectible', 'open'] as const) {
  test(`a reversal of an outcome whose invoice is ${status} is taken off that invoice, not credited on the next`, async () => {
    const customer = await insertCustomer(db, { external_id: `unpaid-${status}` });
    const plan = await insertPlan(db, {
      code: `ra-unpaid-${status}`,
      billing_interval: 'P1M',
      flat_fee: '0',
      charges: [{ metricCode: 'ra_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never,
      settings: { disputeWindow: 'P90D' },
    });
    const [subscription] = await db('subscriptions')
      .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:unpaid-${status}`, start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
      .returning('*');
    const february = { start: '2029-02-01T00:00:00.000Z', end: '2029-03-01T00:00:00.000Z' };
    const calls = (prefix: string, count: number, at: string) =>
      insertUsageEvents(db, Array.from({ length: count }, (_, i) => ({ customerId: customer.id, eventId: `${prefix}-${i}`, eventType: 'ra.call', occurredAt: new Date(at), properties: {} })));
    const close = (period: { start: string; end: string }) =>
      db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(period.start), periodEnd: new Date(period.end), planId: plan.id, charges: plan.charges as never }));

    await calls(`unpaid-${status}-jan`, 8, '2029-01-15T00:00:00Z');
    await close(january);
    const invoicing = createInvoicingActivities(db);
    const unpaid = await invoicing.createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: null, usagePeriod: january });
    await db('invoices').where({ id: unpaid.invoiceId }).update({ status });
    await insertReversalEvents(
      db,
      Array.from({ length: 5 }, (_, i) => ({ customerId: customer.id, eventId: `unpaid-${status}-jan-${i}-reversal`, eventType: 'ra.call', occurredAt: new Date('2029-02-10T00:00:00Z'), properties: {}, reversesEventId: `unpaid-${status}-jan-${i}` })),
    );
    // The preview of the next invoice shows no credit line for it either.
    expect(await pendingReversalCredits(db, subscription.id, customer.id, plan)).toEqual([]);
    await calls(`unpaid-${status}-feb`, 10, '2029-02-15T00:00:00Z');
    await close(february);

    const next = await invoicing.createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: null, usagePeriod: february });
    expect(next.total).toBe('10.00');
    const notes = await db<InvoiceRow & { credited_invoice_id: string | null }>('invoices').where({ subscription_id: subscription.id, kind: 'credit_note' });
    expect(notes.map((note) => ({ against: note.credited_invoice_id === unpaid.invoiceId ? 'unpaid invoice' : note.credited_invoice_id, total: money(note.total), status: note.status }))).toEqual([
      { against: 'unpaid invoice', total: '5.00', status: 'open' },
    ]);
    const billedJanuary = (await db<InvoiceRow>('invoices').where({ id: unpaid.invoiceId }).first())!;
    expect(money((await amountOwedAfterCreditNotes(db, billedJanuary)).toFixed())).toBe('3.00');
  });
}

/**
 * An unpaid invoice that owes less than the reversal's credit (prepaid credit paid part of it) is settled first by
 * what it owes; only the rest comes back, the way a credit of a paid invoice does (to the grant that paid, through
 * the next invoice). Credited whole on the next invoice, the customer got back money never paid.
 * Timeline (2029), 1.00 a call, reversals accepted for 90 days, a 5.00 promotional grant:
 *   Jan 15  8 calls -> Feb 1 invoice: 8.00 - 5.00 prepaid = 3.00, declined: open (dunning) or uncollectible
 *   Feb 10  5 January calls reversed (credit 5.00); Feb 15 10 calls
 *   Mar 1   a credit note of 3.00 against January's (it owes 0.00); the invoice: 10.00 - 2.00 + 2.00 given back to the
 *           grant, which pays 2.00 of it: 8.00. (Before: the whole 5.00 went back to the grant, the invoice 5.00, and
 *           January still owed 3.00: 3 calls for 5.00 paid, 5.00 back.)
 */
for (const status of ['uncollectible', 'open'] as const) {
  test(`a reversal's credit larger than what its ${status} invoice owes settles that invoice; only the rest comes back`, async () => {
    const customer = await insertCustomer(db, { external_id: `part-paid-${status}` });
    const plan = await insertPlan(db, {
      code: `ra-part-paid-${status}`,
      billing_interval: 'P1M',
      flat_fee: '0',
      charges: [{ metricCode: 'ra_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never,
      settings: { disputeWindow: 'P90D' },
    });
    const [subscription] = await db('subscriptions')
      .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:part-paid-${status}`, start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
      .returning('*');
    await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '5.00', priority: 0, effectiveAt: new Date(january.start) });
    const february = { start: '2029-02-01T00:00:00.000Z', end: '2029-03-01T00:00:00.000Z' };
    const calls = (prefix: string, count: number, at: string) =>
      insertUsageEvents(db, Array.from({ length: count }, (_, i) => ({ customerId: customer.id, eventId: `${prefix}-${i}`, eventType: 'ra.call', occurredAt: new Date(at), properties: {} })));
    const close = (period: { start: string; end: string }) =>
      db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(period.start), periodEnd: new Date(period.end), planId: plan.id, charges: plan.charges as never }));

    await calls(`part-paid-${status}-jan`, 8, '2029-01-15T00:00:00Z');
    await close(january);
    const invoicing = createInvoicingActivities(db);
    const unpaid = await invoicing.createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: null, usagePeriod: january });
    expect(unpaid.total).toBe('3.00');
    await db('invoices').where({ id: unpaid.invoiceId }).update({ status });
    await insertReversalEvents(
      db,
      Array.from({ length: 5 }, (_, i) => ({ customerId: customer.id, eventId: `part-paid-${status}-jan-${i}-reversal`, eventType: 'ra.call', occurredAt: new Date('2029-02-10T00:00:00Z'), properties: {}, reversesEventId: `part-paid-${status}-jan-${i}` })),
    );
    // The preview of the next invoice shows what it will carry: the 2.00 left, given back to the grant.
    const previewed = await pendingReversalCredits(db, subscription.id, customer.id, plan);
    expect(previewed.map((line) => [line.kind, line.amount])).toEqual([
      ['usage', '-2.00'],
      ['credit', '2.00'],
    ]);
    await calls(`part-paid-${status}-feb`, 10, '2029-02-15T00:00:00Z');
    await close(february);

    const next = await invoicing.createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: null, usagePeriod: february });
    const lines = await db('invoice_lines').where({ invoice_id: next.invoiceId }).orderBy('position');
    expect(lines.map((line) => [line.kind, money(line.amount)])).toEqual([
      ['usage', '10.00'],
      ['usage', '-2.00'],
      ['credit', '2.00'],
      ['credit', '-2.00'],
    ]);
    expect(next.total).toBe('8.00');
    const notes = await db<InvoiceRow & { credited_invoice_id: string | null }>('invoices').where({ subscription_id: subscription.id, kind: 'credit_note' });
    expect(notes.map((note) => ({ against: note.credited_invoice_id === unpaid.invoiceId ? 'unpaid invoice' : note.credited_invoice_id, total: money(note.total), status: note.status }))).toEqual([
      { against: 'unpaid invoice', total: '3.00', status: 'open' },
    ]);
    const noteLines = await db('invoice_lines').where({ invoice_id: notes[0].id }).orderBy('position');
    // The credit line cut at 3.00 (the quantity stays the usage as corrected: 3 calls).
    expect(noteLines.map((line) => [line.kind, Number(line.quantity), money(line.amount)])).toEqual([['reversal_credit', 3, '3.00']]);
    const billedJanuary = (await db<InvoiceRow>('invoices').where({ id: unpaid.invoiceId }).first())!;
    expect(money((await amountOwedAfterCreditNotes(db, billedJanuary)).toFixed())).toBe('0.00');
    // 5.00 - 5.00 (January) + 2.00 (given back) - 2.00 (February) = 0.00
    expect(money((await findWallet(db, customer.id, 'USD'))!.balance)).toBe('0.00');
  });
}

test('after the end too, a reversal settles what the unpaid closing invoice owes before prepaid credit gets the rest', async () => {
  // Timeline (2029), 1.00 a call, a 5.00 promotional grant: Jan 15 8 calls -> the closing invoice of Feb 1: 8.00 - 5.00
  // prepaid = 3.00, uncollectible; Feb 10 5 calls reversed: a note of 3.00 against it and 2.00 back to the grant
  // (before: no note, 5.00 back to the grant, 3.00 still owed).
  const customer = await insertCustomer(db, { external_id: 'ended-part-paid' });
  const plan = await insertPlan(db, { code: 'ra-ended-part-paid', billing_interval: 'P1M', flat_fee: '0', charges: [{ metricCode: 'ra_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never, settings: { disputeWindow: 'P90D' } });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:ended-part-paid', start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '5.00', priority: 0, effectiveAt: new Date(january.start) });
  await insertUsageEvents(db, Array.from({ length: 8 }, (_, i) => ({ customerId: customer.id, eventId: `ended-pp-${i}`, eventType: 'ra.call', occurredAt: new Date('2029-01-15T00:00:00Z'), properties: {} })));
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(january.start), periodEnd: new Date(january.end), planId: plan.id, charges: plan.charges as never }),
  );
  const closing = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'closing', flatFeePeriod: null, usagePeriod: january });
  expect(closing.total).toBe('3.00');
  await db('invoices').where({ id: closing.invoiceId }).update({ status: 'uncollectible' });
  await db('subscriptions').where({ id: subscription.id }).update({ status: 'canceled' });

  await insertReversalEvents(
    db,
    Array.from({ length: 5 }, (_, i) => ({ customerId: customer.id, eventId: `ended-pp-${i}-reversal`, eventType: 'ra.call', occurredAt: new Date('2029-02-10T00:00:00Z'), properties: {}, reversesEventId: `ended-pp-${i}` })),
  );
  const issued = await creditReversalsOfEndedSubscriptions(db, [customer.id]);
  expect(issued.map(({ creditNote, refund }) => ({ against: creditNote.credited_invoice_id === closing.invoiceId ? 'closing invoice' : creditNote.credited_invoice_id, note: money(creditNote.total), refund: refund ?? null }))).toEqual([
    { against: 'closing invoice', note: '3.00', refund: null },
  ]);
  expect(money((await amountOwedAfterCreditNotes(db, (await db<InvoiceRow>('invoices').where({ id: closing.invoiceId }).first())!)).toFixed())).toBe('0.00');
  expect(money((await findWallet(db, customer.id, 'USD'))!.balance)).toBe('2.00');
});

test('a second reversal of an unpaid period settles only the usage left after the first: prepaid credit never pays the fee', async () => {
  // Timeline (2029), a 20.00 fee and 1.00 a call, a 5.00 promotional grant:
  //   Feb 1   8 January calls -> 20.00 + 8.00 - 5.00 prepaid = 23.00, open (3.00 of it is usage)
  //   Feb 10  2 calls reversed: a 2.00 note (January owes 21.00: 1.00 of usage)
  //   Mar 10  3 more reversed: a 1.00 note and 2.00 back to the grant; January owes its fee, 20.00, as when all 5 are
  //           reversed at once (before: a 3.00 note, 18.00 owed, nothing back: the grant paid 2.00 of the fee)
  const customer = await insertCustomer(db, { external_id: 'reversed-twice' });
  const plan = await insertPlan(db, { code: 'ra-reversed-twice', billing_interval: 'P1M', flat_fee: '20.00', charges: [{ metricCode: 'ra_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never, settings: { disputeWindow: 'P90D' } });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:reversed-twice', start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '5.00', priority: 0, effectiveAt: new Date(january.start) });
  await insertUsageEvents(db, Array.from({ length: 8 }, (_, i) => ({ customerId: customer.id, eventId: `twice-${i}`, eventType: 'ra.call', occurredAt: new Date('2029-01-15T00:00:00Z'), properties: {} })));
  const month = (m: number) => ({ start: new Date(Date.UTC(2029, m - 1, 1)).toISOString(), end: new Date(Date.UTC(2029, m, 1)).toISOString() });
  const invoicing = createInvoicingActivities(db);
  const invoiceMonth = async (m: number) => {
    await db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(month(m).start), periodEnd: new Date(month(m).end), planId: plan.id, charges: plan.charges as never }));
    return invoicing.createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: month(m + 1), usagePeriod: month(m) });
  };
  const reverse = (calls: number[], at: string) =>
    insertReversalEvents(db, calls.map((i) => ({ customerId: customer.id, eventId: `twice-${i}-reversal`, eventType: 'ra.call', occurredAt: new Date(at), properties: {}, reversesEventId: `twice-${i}` })));

  const unpaid = await invoiceMonth(1);
  expect(unpaid.total).toBe('23.00');
  await db('invoices').where({ id: unpaid.invoiceId }).update({ status: 'open' });
  await reverse([0, 1], '2029-02-10T00:00:00Z');
  expect((await invoiceMonth(2)).total).toBe('20.00');
  await reverse([2, 3, 4], '2029-03-10T00:00:00Z');
  const april = await invoiceMonth(3);
  const lines = await db('invoice_lines').where({ invoice_id: april.invoiceId }).orderBy('position');
  expect(lines.map((line) => [line.kind, money(line.amount)])).toEqual([
    ['flat_fee', '20.00'],
    ['usage', '0.00'],
    ['usage', '-2.00'],
    ['credit', '2.00'],
  ]);
  const notes = await db<InvoiceRow>('invoices').where({ subscription_id: subscription.id, kind: 'credit_note' }).orderBy('finalized_at');
  expect(notes.map((note) => money(note.total))).toEqual(['2.00', '1.00']);
  expect(money((await amountOwedAfterCreditNotes(db, (await db<InvoiceRow>('invoices').where({ id: unpaid.invoiceId }).first())!)).toFixed())).toBe('20.00');
  expect(money((await findWallet(db, customer.id, 'USD'))!.balance)).toBe('2.00');
});
