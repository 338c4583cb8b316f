/**
 * Credit given back to the wallet (issue 12, docs/wallets.md): a re-rating that lowers an invoice the wallet paid
 * returns the credit to the grants it came from (newest draw first), or as a goodwill grant when they expired,
 * once per re-rating; the credit note refunds only the rest. And a proration invoice never lets the wallet pay
 * its prorated fees. Every amount by hand, to the minor unit.
 */
import { randomUUID } from 'node:crypto';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createReratingActivities } from '../../activities/rerating';
import type { Database } from '../../store/database';
import { insertRerate } from '../../store/rerates';
import { creditReversalsOfEndedSubscriptions } from '../../store/reversal-credit-notes';
import { insertReversalEvents } from '../../store/reversals';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { pendingReversalCredits } from '../../store/reversal-credits';
import { createGrant, findWallet } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'rr_tokens', name: 'Tokens', event_type: 'rr.llm', aggregation: 'sum', property: 'tokens' });
});

afterAll(async () => {
  await db?.destroy();
});

const tokensAt = (unitPrice: string) => [{ metricCode: 'rr_tokens', price: { model: 'per_unit', unitPrice } }] as never;

/** A plan of 20.00 a month + 0.01 a token, 5.00 credit bucket; `tokens` used in the month starting `year`-01 (events `name`-1, -2, ...). */
async function invoicedMonth(name: string, tokens: string | readonly string[], year: number, grants: (customerId: string) => Promise<unknown>) {
  const usage = { start: `${year}-01-01T00:00:00.000Z`, end: `${year}-02-01T00:00:00.000Z` };
  const next = { start: `${year}-02-01T00:00:00.000Z`, end: `${year}-03-01T00:00:00.000Z` };
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, { code: `rr-${name}`, billing_interval: 'P1M', flat_fee: '20.00', charges: tokensAt('0.01'), settings: { creditBucket: '5.00' } });
  const cheaper = await insertPlan(db, { code: `rr-${name}`, version: 2, billing_interval: 'P1M', flat_fee: '20.00', charges: tokensAt('0.005'), settings: { creditBucket: '5.00' } });
  const cheapest = await insertPlan(db, { code: `rr-${name}`, version: 3, billing_interval: 'P1M', flat_fee: '20.00', charges: tokensAt('0.004'), settings: { creditBucket: '5.00' } });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(usage.start), current_period_start: new Date(usage.start), current_period_end: new Date(usage.end) })
    .returning('*');
  const events = typeof tokens === 'string' ? [tokens] : tokens;
  await insertUsageEvents(db, events.map((value, index) => ({ customerId: customer.id, eventId: `${name}-${index + 1}`, eventType: 'rr.llm', occurredAt: new Date(Date.parse(usage.start) + 86_400_000), properties: { tokens: value } })));
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(usage.start), periodEnd: new Date(usage.end), planId: plan.id, charges: plan.charges as never }),
  );
  await grants(customer.id);
  const summary = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: next, usagePeriod: usage });
  return { customer, subscriptionId: subscription.id as string, invoiceId: summary.invoiceId, total: summary.total, cheaper, cheapest };
}

/** Proposes, approves and carries out a re-rating of the invoice at a corrected plan. */
async function rerate(invoiceId: string, subscriptionId: string, customerId: string, correctedPlanId: string) {
  const id = randomUUID();
  await db.transaction((trx) => insertRerate(trx, { id, invoiceId, subscriptionId, customerId, requestedBy: 'finance', reason: 'price lowered', correctedPlanId, includeLateUsage: false }));
  const activities = createReratingActivities(db);
  const proposed = await activities.proposeRerate({ rerateId: id });
  await activities.recordRerateDecision({ rerateId: id, approved: true, by: 'finance', reason: 'ok' });
  const finalized = await activities.finalizeRerate({ rerateId: id });
  // Carried out again (a retried activity): nothing more happens.
  expect(await activities.finalizeRerate({ rerateId: id })).toEqual(finalized);
  const row = await db('rerates').where({ id }).first();
  return { proposed, finalized, proposal: row.proposal };
}

async function walletOf(customerId: string) {
  const wallet = (await findWallet(db, customerId, 'USD'))!;
  const grants = await db('wallet_grants').where({ wallet_id: wallet.id }).orderBy('created_at');
  const ledger = await db('wallet_ledger').where({ wallet_id: wallet.id }).orderBy('id');
  return {
    balance: Number(wallet.balance).toFixed(2),
    remaining: Object.fromEntries(grants.map((grant) => [grant.grant_key.split(':')[0], Number(grant.remaining).toFixed(2)])),
    reversals: ledger.filter((row) => row.kind === 'reversal').map((row) => Number(row.amount).toFixed(2)),
  };
}

const creditNotesOf = async (invoiceId: string) =>
  (await db('invoices').where({ credited_invoice_id: invoiceId }).orderBy('created_at').select('total')).map((row) => Number(row.total).toFixed(2));

test('a re-rating that lowers a wallet-paid invoice gives the credit back to its grants, newest draw first; no cash refund is due', async () => {
  const { customer, subscriptionId, invoiceId, total, cheaper } = await invoicedMonth('all-wallet', '1240', 2027, async (customerId) => {
    await createGrant(db, { customerId, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '4.00', priority: 0, effectiveAt: new Date('2027-01-01T00:00:00Z'), expiresAt: new Date('2027-03-01T00:00:00Z') });
    await createGrant(db, { customerId, currency: 'USD', grantKey: 'bought', source: 'purchased', amount: '100.00', priority: 1, effectiveAt: new Date('2027-01-01T00:00:00Z') });
  });
  // 20.00 fee + 12.40 usage (1,240 × 0.01) − 5.00 bucket − 4.00 promo − 3.40 purchased = 20.00
  expect(total).toBe('20.00');

  const { proposed, finalized, proposal } = await rerate(invoiceId, subscriptionId, customer.id, cheaper.id);
  // At 0.005: usage 6.20, bucket still −5.00, so the usage line drops by 6.20 and nothing else changes. (Before
  // this change the wallet's own credit lines counted as "already invoiced": the proposal came out +1.20.)
  expect(proposed).toMatchObject({ outcome: 'credit', total: '-6.20' });
  expect(proposal.lines.map((line: { kind: string; amount: string }) => [line.kind, line.amount])).toEqual([['usage', '-6.20']]);
  // The wallet paid 7.40: all 6.20 goes back to it, the purchased draw (3.40, the newest) first, then 2.80 promo.
  expect(proposal.walletCreditBack).toBe('6.20');
  expect(finalized.resultInvoiceId).toBeNull();
  expect(await creditNotesOf(invoiceId)).toEqual([]);
  expect(await walletOf(customer.id)).toEqual({
    // 104.00 granted − 7.40 drawn + 6.20 back = 102.80
    balance: '102.80',
    remaining: { promo: '2.80', bought: '100.00', plan_included: '0.00' },
    reversals: ['3.40', '2.80'],
  });
});

test('when the wallet paid less than the credit, it gets back what it paid and the credit note refunds the rest; a second re-rating gives back nothing twice', async () => {
  const { customer, subscriptionId, invoiceId, total, cheaper, cheapest } = await invoicedMonth('part-wallet', '1240', 2027, (customerId) =>
    createGrant(db, { customerId, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '2.00', effectiveAt: new Date('2027-01-01T00:00:00Z') }),
  );
  // 20.00 + 12.40 − 5.00 bucket − 2.00 promo = 25.40, paid in cash.
  expect(total).toBe('25.40');
  // Paid by card (as the collection step would record it).
  await db('payments').insert({ invoice_id: invoiceId, attempt: 1, status: 'succeeded', amount: '25.40', currency: 'USD', idempotency_key: `payment:${invoiceId}:1`, gateway_charge_id: 'ch_test' });
  await db('invoices').where({ id: invoiceId }).update({ status: 'paid' });

  const first = await rerate(invoiceId, subscriptionId, customer.id, cheaper.id);
  // −6.20: 2.00 back to the promo grant, 4.20 refunded.
  expect(first.proposed).toMatchObject({ outcome: 'credit', total: '-6.20' });
  expect(first.proposal.walletCreditBack).toBe('2.00');
  expect(await creditNotesOf(invoiceId)).toEqual(['4.20']);

  const second = await rerate(invoiceId, subscriptionId, customer.id, cheapest.id);
  // At 0.004: usage 4.96 against 6.20 billed so far: −1.24; the bucket now covers only 4.96 of its 5.00: +0.04.
  // −1.20, all refunded (the draw has nothing left to give back).
  expect(second.proposed).toMatchObject({ outcome: 'credit', total: '-1.20' });
  expect(second.proposal.lines.map((line: { kind: string; amount: string }) => [line.kind, line.amount])).toEqual([['usage', '-1.24'], ['credit', '0.04']]);
  expect(second.proposal.walletCreditBack).toBeUndefined();
  expect(await creditNotesOf(invoiceId)).toEqual(['4.20', '1.20']);
  expect(await walletOf(customer.id)).toEqual({ balance: '2.00', remaining: { promo: '2.00', plan_included: '0.00' }, reversals: ['2.00'] });
});

test('credit drawn from a grant that has expired since comes back as a goodwill grant', async () => {
  // A year already past, so the promo (expiring 2026-02-15) has expired when the re-rating is carried out.
  const { customer, subscriptionId, invoiceId, total, cheaper } = await invoicedMonth('expired', '1240', 2026, (customerId) =>
    createGrant(db, { customerId, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '30.00', effectiveAt: new Date('2026-01-01T00:00:00Z'), expiresAt: new Date('2026-02-15T00:00:00Z') }),
  );
  // 20.00 + 12.40 − 5.00 − 7.40 promo = 20.00
  expect(total).toBe('20.00');
  const { proposal } = await rerate(invoiceId, subscriptionId, customer.id, cheaper.id);
  expect(proposal.walletCreditBack).toBe('6.20');
  const wallet = await walletOf(customer.id);
  expect(wallet.remaining).toEqual({ promo: '22.60', plan_included: '0.00', goodwill: '6.20' });
  // 30.00 − 7.40 + 6.20 goodwill = 28.80 (the promo's 22.60 not expired in the ledger yet: no expiry run here)
  expect(wallet.balance).toBe('28.80');
});

test('an outcome reversed after its wallet-paid period was invoiced: the credit goes back to the wallet, the next invoice shows it and charges no less cash', async () => {
  const { customer, subscriptionId, total } = await invoicedMonth('reversed', '1240', 2027, async (customerId) => {
    await createGrant(db, { customerId, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '4.00', priority: 0, effectiveAt: new Date('2027-01-01T00:00:00Z'), expiresAt: new Date('2027-06-01T00:00:00Z') });
    await createGrant(db, { customerId, currency: 'USD', grantKey: 'bought', source: 'purchased', amount: '100.00', priority: 1, effectiveAt: new Date('2027-01-01T00:00:00Z') });
  });
  expect(total).toBe('20.00'); // 20.00 + 12.40 − 5.00 − 4.00 promo − 3.40 purchased
  // January's only event is reversed in February (after January closed); February has no usage.
  await insertReversalEvents(db, [{ customerId: customer.id, eventId: 'reversed-r1', eventType: 'rr.llm', occurredAt: new Date('2027-02-03T00:00:00Z'), properties: {}, reversesEventId: 'reversed-1' }]);
  const [plan] = await db('plans').where({ code: 'rr-reversed', version: 1 });
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId, customerId: customer.id, periodStart: new Date('2027-02-01T00:00:00Z'), periodEnd: new Date('2027-03-01T00:00:00Z'), planId: plan.id, charges: plan.charges as never }),
  );
  const march = await createInvoicingActivities(db).createPeriodInvoice({
    subscriptionId,
    kind: 'period',
    flatFeePeriod: { start: '2027-03-01T00:00:00.000Z', end: '2027-04-01T00:00:00.000Z' },
    usagePeriod: { start: '2027-02-01T00:00:00.000Z', end: '2027-03-01T00:00:00.000Z' },
  });
  const lines = await db('invoice_lines').where({ invoice_id: march.invoiceId }).orderBy('position');
  // January recomputed without the event: usage −12.40, the bucket +5.00 (it covered 5.00 of it): −7.40 credit,
  // all of which the wallet had paid: 7.40 back to it (purchased 3.40, then promo 4.00), offset on the invoice.
  // total 20.00 fee + 0.00 February usage − 12.40 + 5.00 + 7.40 = 20.00 (before: 12.60, promo credit paid out as a discount)
  expect(lines.map((line) => [line.kind, line.description, Number(line.amount).toFixed(2)])).toEqual([
    ['flat_fee', 'rr-reversed subscription fee', '20.00'],
    ['usage', expect.any(String), '0.00'],
    ['usage', expect.stringContaining('reversed'), '-12.40'],
    ['credit', expect.any(String), '5.00'],
    ['credit', 'Reversed usage credit returned to your prepaid credits', '7.40'],
  ]);
  expect(march.total).toBe('20.00');
  expect(await walletOf(customer.id)).toMatchObject({ balance: '104.00', remaining: { promo: '4.00', bought: '100.00' }, reversals: ['3.40', '4.00'] });
});

test('an outcome reversed after the subscription ended: the wallet gets back what it paid, the credit note refunds only the rest', async () => {
  const { customer, subscriptionId, total } = await invoicedMonth('ended', '1240', 2027, (customerId) =>
    createGrant(db, { customerId, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '2.00', effectiveAt: new Date('2027-01-01T00:00:00Z') }),
  );
  expect(total).toBe('25.40'); // 20.00 + 12.40 − 5.00 bucket − 2.00 promo
  await db('subscriptions').where({ id: subscriptionId }).update({ status: 'canceled' });
  await insertReversalEvents(db, [{ customerId: customer.id, eventId: 'ended-r1', eventType: 'rr.llm', occurredAt: new Date('2027-02-03T00:00:00Z'), properties: {}, reversesEventId: 'ended-1' }]);
  const issued = await creditReversalsOfEndedSubscriptions(db, [customer.id]);
  // January without the event: usage −12.40, bucket +5.00 → 7.40 owed; the promo paid 2.00 of it: back to the
  // wallet (a +2.00 line), 5.40 refunded by the credit note.
  expect(issued).toHaveLength(1);
  expect(Number(issued[0].creditNote.total).toFixed(2)).toBe('5.40');
  expect(await walletOf(customer.id)).toMatchObject({ balance: '2.00', remaining: { promo: '2.00' }, reversals: ['2.00'] });
  // Called again: everything is credited, nothing more happens.
  expect(await creditReversalsOfEndedSubscriptions(db, [customer.id])).toEqual([]);
  expect((await walletOf(customer.id)).reversals).toEqual(['2.00']);
});

describe('proration invoices', () => {
  const period = { start: '2027-01-01T00:00:00.000Z', end: '2027-02-01T00:00:00.000Z' };
  const changeAt = '2027-01-17T00:00:00.000Z'; // 15 of 31 days left

  async function changedPlan(name: string, withUsage: boolean) {
    const customer = await insertCustomer(db, { external_id: name });
    const oldPlan = await insertPlan(db, { code: `rr-${name}-old`, billing_interval: 'P1M', flat_fee: '20.00', charges: withUsage ? tokensAt('0.01') : ([] as never), settings: { creditBucket: '5.00' } });
    const newPlan = await insertPlan(db, { code: `rr-${name}-new`, billing_interval: 'P1M', flat_fee: '50.00', charges: [] as never, settings: {} });
    const [subscription] = await db('subscriptions')
      .insert({ customer_id: customer.id, plan_id: oldPlan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(period.start), current_period_start: new Date(period.start), current_period_end: new Date(period.end) })
      .returning('*');
    await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'bought', source: 'purchased', amount: '100.00', effectiveAt: new Date(period.start) });
    const usagePeriod = { start: period.start, end: changeAt };
    if (withUsage) {
      await insertUsageEvents(db, [{ customerId: customer.id, eventId: `${name}-1`, eventType: 'rr.llm', occurredAt: new Date('2027-01-05T00:00:00Z'), properties: { tokens: '1240' } }]);
      await db.transaction((trx) =>
        closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(usagePeriod.start), periodEnd: new Date(usagePeriod.end), planId: oldPlan.id, charges: oldPlan.charges as never }),
      );
    }
    const summary = await createInvoicingActivities(db).createProrationInvoice({ subscriptionId: subscription.id, period, changeAt, oldPlanId: oldPlan.id, newPlanId: newPlan.id, usagePeriod: withUsage ? usagePeriod : null });
    const lines = await db('invoice_lines').where({ invoice_id: summary.invoiceId }).orderBy('position');
    return { summary, lines: lines.map((line) => [line.kind, Number(line.amount).toFixed(2)]), wallet: await walletOf(customer.id) };
  }

  test('prorated fees only: the wallet pays nothing', async () => {
    const { summary, lines, wallet } = await changedPlan('proration-fees', false);
    // unused 20.00 × 15/31 = 9.677… → −9.68; remaining 50.00 × 15/31 = 24.193… → 24.19; total 14.51, all cash.
    expect(lines).toEqual([
      ['proration', '-9.68'],
      ['proration', '24.19'],
    ]);
    expect(summary.total).toBe('14.51');
    expect(wallet).toMatchObject({ balance: '100.00', remaining: { bought: '100.00' } });
  });

  test('with usage up to the change: the wallet pays that usage after the bucket, never the fees', async () => {
    const { summary, lines, wallet } = await changedPlan('proration-usage', true);
    // usage 1,240 × 0.01 = 12.40, bucket −5.00, wallet −7.40; fees −9.68 + 24.19 stay: total 14.51.
    expect(lines).toEqual([
      ['proration', '-9.68'],
      ['proration', '24.19'],
      ['usage', '12.40'],
      ['credit', '-5.00'],
      ['credit', '-7.40'],
    ]);
    expect(summary.total).toBe('14.51');
    expect(wallet).toMatchObject({ balance: '92.60', remaining: { bought: '92.60', plan_included: '0.00' } });
  });
});

/**
 * A reversed outcome's credit goes back line by line too: only to the grants that paid the reversed usage.
 *   Jan     500 tokens = 50.00, 300 calls = 30.00 (0.10 each), fee 10.00, a tokens-only grant of 100.00
 *   Feb 1   invoice 10.00 + 50.00 + 30.00 − 50.00 tokens-only = 40.00, paid by card (the calls: by card)
 *   the calls event reversed after the subscription ended: −30.00 for calls, which no grant paid: nothing goes back
 *   to the wallet (it keeps 50.00), the credit note refunds 30.00. Before: the 30.00 went to the tokens-only grant
 *   (balance 80.00) and nothing was refunded.
 */
test('an outcome reversed after the subscription ended: credit for usage the card paid is refunded, not given to a grant of another metric', async () => {
  await db('billable_metrics').insert([
    { code: 'rr_calls', name: 'Calls', event_type: 'rr.calls', aggregation: 'sum', property: 'n' },
    { code: 'rr_words', name: 'Words', event_type: 'rr.words', aggregation: 'sum', property: 'n' },
  ]);
  const customer = await insertCustomer(db, { external_id: 'scoped-reversal' });
  const plan = await insertPlan(db, {
    code: 'rr-scoped-reversal', billing_interval: 'P1M', flat_fee: '10.00',
    charges: [{ metricCode: 'rr_words', price: { model: 'per_unit', unitPrice: '0.10' } }, { metricCode: 'rr_calls', price: { model: 'per_unit', unitPrice: '0.10' } }] as never,
  });
  const jan = { start: '2027-01-01T00:00:00.000Z', end: '2027-02-01T00:00:00.000Z' };
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:scoped-reversal', start_at: new Date(jan.start), current_period_start: new Date(jan.start), current_period_end: new Date(jan.end) })
    .returning('*');
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'words-only', source: 'promotional', amount: '100.00', effectiveAt: new Date(jan.start), metricCodes: ['rr_words'] });
  await insertUsageEvents(db, [
    { customerId: customer.id, eventId: 'scoped-words', eventType: 'rr.words', occurredAt: new Date('2027-01-04T00:00:00Z'), properties: { n: '500' } },
    { customerId: customer.id, eventId: 'scoped-calls', eventType: 'rr.calls', occurredAt: new Date('2027-01-05T00:00:00Z'), properties: { n: '300' } },
  ]);
  await db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(jan.start), periodEnd: new Date(jan.end), planId: plan.id, charges: plan.charges as never }));
  const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: { start: jan.end, end: '2027-03-01T00:00:00.000Z' }, usagePeriod: jan });
  expect(invoice.total).toBe('40.00');
  await db('payments').insert({ invoice_id: invoice.invoiceId, attempt: 1, status: 'succeeded', amount: '40.00', currency: 'USD', idempotency_key: `payment:${invoice.invoiceId}:1`, gateway_charge_id: 'ch_scoped' });
  await db('invoices').where({ id: invoice.invoiceId }).update({ status: 'paid' });
  await db('subscriptions').where({ id: subscription.id }).update({ status: 'canceled' });
  await insertReversalEvents(db, [{ customerId: customer.id, eventId: 'scoped-calls-r', eventType: 'rr.calls', occurredAt: new Date('2027-02-03T00:00:00Z'), properties: {}, reversesEventId: 'scoped-calls' }]);
  const issued = await creditReversalsOfEndedSubscriptions(db, [customer.id]);
  expect(issued.map((note) => Number(note.creditNote.total).toFixed(2))).toEqual(['30.00']);
  expect(await walletOf(customer.id)).toMatchObject({ balance: '50.00', remaining: { 'words-only': '50.00' }, reversals: [] });
});

/**
 * A re-rating that undoes an earlier upward one: the adjustment invoice was paid by card, so lowering the line
 * refunds that cash first; only what the line drops below what the wallet paid goes back to the grant.
 *   Jan     1,240 tokens at 0.01 = 12.40, bucket 5.00: Feb 1 invoice 20.00 + 12.40 − 5.00 − 7.40 promo = 20.00 (card)
 *   at 0.02:  usage 24.80, +12.40 adjustment invoice, paid by card
 *   at 0.01:  −12.40, the adjustment undone: 12.40 refunded, the promo grant stays at 92.60 (before: 7.40 went back
 *             to it and 5.00 was refunded: 7.40 of the card's money turned into promotional credit)
 *   at 0.005: −6.20, below what the wallet paid: 6.20 back to the promo grant (98.80), nothing refunded
 */
test('lowering a line an adjustment raised refunds the adjustment\'s cash first; the grant gets back only the rest', async () => {
  const { customer, subscriptionId, invoiceId, total, cheaper } = await invoicedMonth('undo-adjustment', '1240', 2027, (customerId) =>
    createGrant(db, { customerId, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '100.00', effectiveAt: new Date('2027-01-01T00:00:00Z') }),
  );
  expect(total).toBe('20.00');
  const paidByCard = async (id: string, amount: string) => {
    await db('payments').insert({ invoice_id: id, attempt: 1, status: 'succeeded', amount, currency: 'USD', idempotency_key: `payment:${id}:1`, gateway_charge_id: `ch_${id}` });
    await db('invoices').where({ id }).update({ status: 'paid' });
  };
  await paidByCard(invoiceId, '20.00');
  const [listed] = await db('plans').where({ code: 'rr-undo-adjustment', version: 1 });
  const dearer = await insertPlan(db, { code: 'rr-undo-adjustment', version: 4, billing_interval: 'P1M', flat_fee: '20.00', charges: tokensAt('0.02'), settings: { creditBucket: '5.00' } });
  const refunded = async () => (await db('refunds').join('invoices', 'invoices.id', 'refunds.invoice_id').where('invoices.customer_id', customer.id).select('refunds.amount')).map((row) => Number(row.amount).toFixed(2));

  const raised = await rerate(invoiceId, subscriptionId, customer.id, dearer.id);
  expect(raised.proposed).toMatchObject({ outcome: 'adjustment', total: '12.40' });
  await paidByCard(raised.finalized.resultInvoiceId!, '12.40');

  const undone = await rerate(invoiceId, subscriptionId, customer.id, listed.id);
  expect(undone.proposed).toMatchObject({ outcome: 'credit', total: '-12.40' });
  expect(undone.proposal.walletCreditBack).toBeUndefined();
  expect(await refunded()).toEqual(['12.40']);
  expect(await walletOf(customer.id)).toMatchObject({ balance: '92.60', remaining: { promo: '92.60' }, reversals: [] });

  const lowered = await rerate(invoiceId, subscriptionId, customer.id, cheaper.id);
  expect(lowered.proposed).toMatchObject({ outcome: 'credit', total: '-6.20' });
  expect(lowered.proposal.walletCreditBack).toBe('6.20');
  expect(await refunded()).toEqual(['12.40']);
  expect(await walletOf(customer.id)).toMatchObject({ balance: '98.80', remaining: { promo: '98.80' }, reversals: ['6.20'] });
  // Asked again at the same price: nothing to do.
  const again = randomUUID();
  await db.transaction((trx) => insertRerate(trx, { id: again, invoiceId, subscriptionId, customerId: customer.id, requestedBy: 'finance', reason: 'again', correctedPlanId: cheaper.id, includeLateUsage: false }));
  expect(await createReratingActivities(db).proposeRerate({ rerateId: again })).toMatchObject({ status: 'nothing_to_do' });
});

/**
 * An outcome reversed after an upward re-rating: the same rule as a re-rating back down (one function,
 * store/wallet-draws.ts walletLoweredLines), so the adjustment's card money comes back first.
 *   Jan     2 × 620 tokens at 0.01 = 12.40, bucket 5.00: Feb 1 invoice 20.00 + 12.40 − 5.00 − 7.40 promo = 20.00 (card)
 *   at 0.02:  usage 24.80, +12.40 adjustment invoice, paid by card
 *   Feb:    one event reversed: 620 × 0.02 = −12.40 (the bucket still fully used). At the final figures from the start
 *           (620 at 0.02 = 12.40 − 5.00 bucket = 7.40, the promo's) the promo pays 7.40 and the card 20.00 fee only:
 *           all 12.40 is the card's. March: 20.00 − 12.40 = 7.60, no give-back; the promo stays at 92.60
 *           (before: 7.40 back to the promo, 20.00 − 12.40 + 7.40 = 15.00: 7.40 of the card's money became promo credit)
 */
test('an outcome reversed after an upward re-rating: the adjustment\'s cash comes back first, the grant keeps what it paid', async () => {
  const name = 'reversed-after-adjustment';
  const { customer, subscriptionId, invoiceId, total } = await invoicedMonth(name, ['620', '620'], 2027, (customerId) =>
    createGrant(db, { customerId, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '100.00', effectiveAt: new Date('2027-01-01T00:00:00Z') }),
  );
  expect(total).toBe('20.00');
  const paidByCard = async (id: string, amount: string) => {
    await db('payments').insert({ invoice_id: id, attempt: 1, status: 'succeeded', amount, currency: 'USD', idempotency_key: `payment:${id}:1`, gateway_charge_id: `ch_${id}` });
    await db('invoices').where({ id }).update({ status: 'paid' });
  };
  await paidByCard(invoiceId, '20.00');
  const dearer = await insertPlan(db, { code: `rr-${name}`, version: 4, billing_interval: 'P1M', flat_fee: '20.00', charges: tokensAt('0.02'), settings: { creditBucket: '5.00' } });
  const raised = await rerate(invoiceId, subscriptionId, customer.id, dearer.id);
  expect(raised.proposed).toMatchObject({ outcome: 'adjustment', total: '12.40' });
  await paidByCard(raised.finalized.resultInvoiceId!, '12.40');

  await insertReversalEvents(db, [{ customerId: customer.id, eventId: `${name}-r2`, eventType: 'rr.llm', occurredAt: new Date('2027-02-03T00:00:00Z'), properties: {}, reversesEventId: `${name}-2` }]);
  const [plan] = await db('plans').where({ code: `rr-${name}`, version: 1 });
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId, customerId: customer.id, periodStart: new Date('2027-02-01T00:00:00Z'), periodEnd: new Date('2027-03-01T00:00:00Z'), planId: plan.id, charges: plan.charges as never }),
  );
  const asLines = (lines: { kind: string; amount: string }[]) => lines.filter((line) => Number(line.amount) !== 0).map((line) => [line.kind, Number(line.amount).toFixed(2)]);
  // What the usage preview and the wallet's pending usage project of the next invoice: the same as it bills.
  const pending = await pendingReversalCredits(db, subscriptionId, customer.id, plan);
  expect(asLines(pending)).toEqual([['usage', '-12.40']]);
  const march = await createInvoicingActivities(db).createPeriodInvoice({
    subscriptionId,
    kind: 'period',
    flatFeePeriod: { start: '2027-03-01T00:00:00.000Z', end: '2027-04-01T00:00:00.000Z' },
    usagePeriod: { start: '2027-02-01T00:00:00.000Z', end: '2027-03-01T00:00:00.000Z' },
  });
  expect(asLines(await db('invoice_lines').where({ invoice_id: march.invoiceId }).orderBy('position'))).toEqual([
    ['flat_fee', '20.00'],
    ['usage', '-12.40'],
  ]);
  expect(march.total).toBe('7.60');
  expect(await walletOf(customer.id)).toMatchObject({ balance: '92.60', remaining: { promo: '92.60' }, reversals: [] });

  // Re-rated back at 0.01: 620 × 0.01 = 6.20 − 5.00 bucket = 1.20 for the promo to pay; it paid 7.40, so 6.20 goes
  // back to it, and nothing is refunded: the reversal already credited the adjustment's 12.40 in cash.
  const [listed] = await db('plans').where({ code: `rr-${name}`, version: 1 });
  const lowered = await rerate(invoiceId, subscriptionId, customer.id, listed.id);
  expect(lowered.proposed).toMatchObject({ outcome: 'credit', total: '-6.20' });
  expect(lowered.proposal.walletCreditBack).toBe('6.20');
  expect(lowered.finalized.resultInvoiceId).toBeNull();
  expect(await walletOf(customer.id)).toMatchObject({ balance: '98.80', remaining: { promo: '98.80' }, reversals: ['6.20'] });
});

/**
 * The same, with the +12.40 adjustment never collected (dunning gave it up): the reversed outcome's 12.40 was never
 * paid, so it comes off the adjustment (a note against it), as a re-rating's credit does, not in cash on March.
 *   Jan     2 × 620 tokens at 0.01: Feb 1 invoice 20.00 (card), the promo 7.40
 *   at 0.02:  +12.40 adjustment, uncollectible
 *   Feb:    one event reversed: −12.40, a note of 12.40 against the adjustment (it owes 0.00); March 20.00, promo 92.60
 *           (before: March 20.00 − 12.40 = 7.60, the adjustment still written off: 12.40 given back never paid)
 *   back at 0.01: −6.20, all of it to the promo (it paid 7.40 for 1.20 due), nothing refunded
 */
test('an outcome reversed after an upward re-rating whose adjustment was given up: the credit comes off the adjustment', async () => {
  const name = 'reversed-after-uncollectible-adjustment';
  const { customer, subscriptionId, invoiceId } = await invoicedMonth(name, ['620', '620'], 2027, (customerId) =>
    createGrant(db, { customerId, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '100.00', effectiveAt: new Date('2027-01-01T00:00:00Z') }),
  );
  await db('payments').insert({ invoice_id: invoiceId, attempt: 1, status: 'succeeded', amount: '20.00', currency: 'USD', idempotency_key: `payment:${invoiceId}:1`, gateway_charge_id: `ch_${invoiceId}` });
  await db('invoices').where({ id: invoiceId }).update({ status: 'paid' });
  const dearer = await insertPlan(db, { code: `rr-${name}`, version: 4, billing_interval: 'P1M', flat_fee: '20.00', charges: tokensAt('0.02'), settings: { creditBucket: '5.00' } });
  const adjustmentId = (await rerate(invoiceId, subscriptionId, customer.id, dearer.id)).finalized.resultInvoiceId!;
  await db('invoices').where({ id: adjustmentId }).update({ status: 'uncollectible' });

  await insertReversalEvents(db, [{ customerId: customer.id, eventId: `${name}-r2`, eventType: 'rr.llm', occurredAt: new Date('2027-02-03T00:00:00Z'), properties: {}, reversesEventId: `${name}-2` }]);
  const [plan] = await db('plans').where({ code: `rr-${name}`, version: 1 });
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId, customerId: customer.id, periodStart: new Date('2027-02-01T00:00:00Z'), periodEnd: new Date('2027-03-01T00:00:00Z'), planId: plan.id, charges: plan.charges as never }),
  );
  const march = await createInvoicingActivities(db).createPeriodInvoice({
    subscriptionId,
    kind: 'period',
    flatFeePeriod: { start: '2027-03-01T00:00:00.000Z', end: '2027-04-01T00:00:00.000Z' },
    usagePeriod: { start: '2027-02-01T00:00:00.000Z', end: '2027-03-01T00:00:00.000Z' },
  });
  expect([march.total, await creditNotesOf(adjustmentId)]).toEqual(['20.00', ['12.40']]);
  expect(await walletOf(customer.id)).toMatchObject({ balance: '92.60', remaining: { promo: '92.60' }, reversals: [] });

  const [listed] = await db('plans').where({ code: `rr-${name}`, version: 1 });
  const lowered = await rerate(invoiceId, subscriptionId, customer.id, listed.id);
  expect(lowered.proposed).toMatchObject({ outcome: 'credit', total: '-6.20' });
  expect(lowered.finalized.resultInvoiceId).toBeNull();
  expect(await walletOf(customer.id)).toMatchObject({ balance: '98.80', remaining: { promo: '98.80' }, reversals: ['6.20'] });
});
