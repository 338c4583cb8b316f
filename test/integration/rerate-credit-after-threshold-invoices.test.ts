/**
 * A re-rating that lowers a period whose usage threshold invoices collected: the period invoice's payment holds
 * only what was left after them, so a credit note against it alone was refused (refund_exceeds_paid) and the
 * customer, owed the difference, was never credited. The credit is refunded from the paid invoices that billed the
 * period: the re-rated one if it can give it all back, else the newest threshold invoice that can, else each in turn.
 *
 * docs/pricing.md's example (2027), calls at 0.25, thresholds 100.00 and 500.00, fee 10.00, every invoice paid:
 *   Mar 10  450 calls  = 112.50: threshold invoice 1, 112.50
 *   Mar 20  2100 calls = 525.00: threshold invoice 2, 412.50
 *   Apr 1   2500 calls = 625.00: period invoice 10.00 + 625.00 − 112.50 − 412.50 = 110.00
 *   price fixed to 0.20: 500.00, credit −125.00: the period invoice holds 110.00; threshold invoice 2 takes it all
 *   price fixed to 0.02:  50.00, credit −450.00: 110.00 + 287.50 (threshold 2's rest) + 52.50 (threshold 1)
 *   billed in the end 635.00 − 125.00 − 450.00 = 60.00 = 10.00 + 2500 × 0.02
 */
import { randomUUID } from 'node:crypto';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createReratingActivities } from '../../activities/rerating';
import { createThresholdActivities } from '../../activities/thresholds';
import type { Database } from '../../store/database';
import { insertRerate } from '../../store/rerates';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createGrant, findWallet } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert([
    { code: 'rt_calls', name: 'Calls', event_type: 'rt.calls', aggregation: 'sum', property: 'n' },
    { code: 'rt_tokens', name: 'Tokens', event_type: 'rt.tokens', aggregation: 'sum', property: 'n' },
  ]);
});

afterAll(async () => {
  await db?.destroy();
});

const march = { start: '2027-03-01T00:00:00.000Z', end: '2027-04-01T00:00:00.000Z' };
const april = { start: '2027-04-01T00:00:00.000Z', end: '2027-05-01T00:00:00.000Z' };
const money = (value: unknown) => Number(value).toFixed(2);

/** Paid by card, as the collection step records it. */
async function paid(invoiceId: string, amount: string) {
  await db('payments').insert({ invoice_id: invoiceId, attempt: 1, status: 'succeeded', amount, currency: 'USD', idempotency_key: `payment:${invoiceId}:1`, gateway_charge_id: `ch_${invoiceId}` });
  await db('invoices').where({ id: invoiceId }).update({ status: 'paid' });
}

test('a credit larger than the period invoice paid is refunded from the threshold invoices that collected the period', async () => {
  const customer = await insertCustomer(db, { external_id: 'rt-thresholds' });
  const plan = (version: number, unitPrice: string) =>
    insertPlan(db, {
      code: 'rt-thresholds', version, billing_interval: 'P1M', flat_fee: '10.00',
      charges: [{ metricCode: 'rt_calls', price: { model: 'per_unit', unitPrice } }] as never,
      settings: { usageThresholds: { amounts: ['100.00', '500.00'] } },
    });
  const [listed, fixed, fixedAgain] = [await plan(1, '0.25'), await plan(2, '0.20'), await plan(3, '0.02')];
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: listed.id, status: 'active', workflow_id: 'direct:rt', start_at: new Date(march.start), current_period_start: new Date(march.start), current_period_end: new Date(march.end) })
    .returning('*');
  const calls = (id: string, n: string, at: string) => insertUsageEvents(db, [{ customerId: customer.id, eventId: id, eventType: 'rt.calls', occurredAt: new Date(at), properties: { n } }]);
  const thresholds = createThresholdActivities(db);
  const thresholdAt = async (at: string) => (await thresholds.createThresholdInvoice({ subscriptionId: subscription.id, usageStart: march.start, at, planId: listed.id })).invoice!;

  await calls('c1', '450', '2027-03-10T00:00:00Z');
  const first = await thresholdAt('2027-03-10T01:00:00.000Z');
  await paid(first.invoiceId, first.total);
  await calls('c2', '1650', '2027-03-20T00:00:00Z');
  const second = await thresholdAt('2027-03-20T01:00:00.000Z');
  await paid(second.invoiceId, second.total);
  await calls('c3', '400', '2027-03-25T00:00:00Z');
  await db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(march.start), periodEnd: new Date(march.end), planId: listed.id, charges: listed.charges as never }));
  const period = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: april, usagePeriod: march });
  expect([first.total, second.total, period.total]).toEqual(['112.50', '412.50', '110.00']);
  await paid(period.invoiceId, period.total);

  const activities = createReratingActivities(db);
  const rerate = async (correctedPlanId: string) => {
    const id = randomUUID();
    await db.transaction((trx) => insertRerate(trx, { id, invoiceId: period.invoiceId, subscriptionId: subscription.id, customerId: customer.id, requestedBy: 'finance', reason: 'price fix', correctedPlanId, includeLateUsage: false }));
    const proposed = await activities.proposeRerate({ rerateId: id });
    if (proposed.status !== 'proposed') return { proposed };
    await activities.recordRerateDecision({ rerateId: id, approved: true, by: 'finance', reason: 'ok' });
    return { proposed, finalized: await activities.finalizeRerate({ rerateId: id }) };
  };
  // Notes written in one transaction share created_at: compared by amount.
  const byAmount = (rows: string[][]) => rows.sort((a, b) => Number(b[1]) - Number(a[1]));
  const notes = async () => byAmount((await db('invoices').where({ kind: 'credit_note' }).select('credited_invoice_id', 'total')).map((note) => [note.credited_invoice_id, money(note.total)]));
  const refunded = async () => byAmount((await db('refunds').select('invoice_id', 'amount')).map((refund) => [refund.invoice_id, money(refund.amount)]));

  // Before: finalizeRerate failed with refund_exceeds_paid (22.50 of a 25.00 note in the reproduction; here 110.00 of 125.00).
  const byFix = await rerate(fixed.id);
  expect(byFix.proposed).toMatchObject({ outcome: 'credit', total: '-125.00' });
  expect(byFix.finalized).toMatchObject({ status: 'finalized' });
  expect(await notes()).toEqual([[second.invoiceId, '125.00']]);

  const bySecondFix = await rerate(fixedAgain.id);
  expect(bySecondFix.proposed).toMatchObject({ outcome: 'credit', total: '-450.00' });
  expect(await notes()).toEqual([
    [second.invoiceId, '287.50'],
    [second.invoiceId, '125.00'],
    [period.invoiceId, '110.00'],
    [first.invoiceId, '52.50'],
  ]);
  expect(await refunded()).toEqual(await notes());
  // The re-rating names its first note; the period's correction is carried out: asked again, nothing to do.
  expect(bySecondFix.finalized?.resultInvoiceId).toBe((await db('invoices').where({ kind: 'credit_note', credited_invoice_id: period.invoiceId }).first()).id);
  expect((await rerate(fixedAgain.id)).proposed).toMatchObject({ status: 'nothing_to_do' });
  // 112.50 + 412.50 + 110.00 − 575.00 = 60.00 = 10.00 fee + 2500 × 0.02.
  const refundedTotal = (await db('refunds').sum<{ total: string }[]>('amount as total'))[0].total;
  expect(money(635 - Number(refundedTotal))).toBe('60.00');
});

/**
 * A re-rating's credit for a line goes back to the grants that paid that line, up to what each paid of it; the rest
 * is refunded in cash. Before, the give-back was capped only by what the invoice's draw still held: here a threshold
 * invoice charged the calls to the card and the grant is for tokens only.
 *   Mar 1   300 calls = 30.00 (0.10): threshold invoice 30.00, paid by card
 *   Mar 4   500 tokens = 50.00 (0.10)
 *   Apr 1   period invoice: 10.00 fee + 50.00 tokens + 30.00 calls − 30.00 threshold − 50.00 tokens-only grant = 10.00
 *           the draw records what it paid per line: tokens 50.00 (the grant), calls 0.00 (the threshold cover)
 *   calls fixed to 0.05: −15.00, all of it calls the card paid: no grant paid the calls line, so nothing goes back
 *   to the wallet; the period invoice holds 10.00 < 15.00, so 15.00 is refunded from the threshold invoice, and the
 *   grant keeps 50.00. Before: walletCreditBack 15.00, the tokens-only promotional grant went to 65.00 and no cash
 *   was refunded: 15.00 of the customer's money turned into promotional credit for another metric.
 */
test('a credit for calls a threshold invoice charged to the card is refunded, not given to a tokens-only grant', async () => {
  const customer = await insertCustomer(db, { external_id: 'rt-scoped' });
  const plan = (version: number, callPrice: string) =>
    insertPlan(db, {
      code: 'rt-scoped', version, billing_interval: 'P1M', flat_fee: '10.00',
      charges: [
        { metricCode: 'rt_tokens', price: { model: 'per_unit', unitPrice: '0.10' } },
        { metricCode: 'rt_calls', price: { model: 'per_unit', unitPrice: callPrice } },
      ] as never,
      settings: { usageThresholds: { amounts: ['25.00'] } },
    });
  const [listed, fixed] = [await plan(1, '0.10'), await plan(2, '0.05')];
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: listed.id, status: 'active', workflow_id: 'direct:rt-scoped', start_at: new Date(march.start), current_period_start: new Date(march.start), current_period_end: new Date(march.end) })
    .returning('*');
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'tokens-only', source: 'promotional', amount: '100.00', effectiveAt: new Date(march.start), metricCodes: ['rt_tokens'] });
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 's-calls', eventType: 'rt.calls', occurredAt: new Date('2027-03-01T12:00:00Z'), properties: { n: '300' } }]);
  const threshold = (await createThresholdActivities(db).createThresholdInvoice({ subscriptionId: subscription.id, usageStart: march.start, at: '2027-03-02T00:00:00.000Z', planId: listed.id })).invoice!;
  await paid(threshold.invoiceId, threshold.total);
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 's-tokens', eventType: 'rt.tokens', occurredAt: new Date('2027-03-04T12:00:00Z'), properties: { n: '500' } }]);
  await db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(march.start), periodEnd: new Date(march.end), planId: listed.id, charges: listed.charges as never }));
  const period = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: april, usagePeriod: march });
  expect([threshold.total, period.total]).toEqual(['30.00', '10.00']);
  await paid(period.invoiceId, period.total);

  const activities = createReratingActivities(db);
  const id = randomUUID();
  await db.transaction((trx) => insertRerate(trx, { id, invoiceId: period.invoiceId, subscriptionId: subscription.id, customerId: customer.id, requestedBy: 'finance', reason: 'price fix', correctedPlanId: fixed.id, includeLateUsage: false }));
  expect(await activities.proposeRerate({ rerateId: id })).toMatchObject({ outcome: 'credit', total: '-15.00' });
  await activities.recordRerateDecision({ rerateId: id, approved: true, by: 'finance', reason: 'ok' });
  await activities.finalizeRerate({ rerateId: id });
  expect((await db('rerates').where({ id }).first()).proposal.walletCreditBack).toBeUndefined();
  expect(money((await findWallet(db, customer.id, 'USD'))!.balance)).toBe('50.00');
  const notes = await db('invoices').where({ kind: 'credit_note' }).whereIn('credited_invoice_id', [threshold.invoiceId, period.invoiceId]).select('credited_invoice_id', 'total');
  expect(notes.map((note) => [note.credited_invoice_id, money(note.total)])).toEqual([[threshold.invoiceId, '15.00']]);
});

/**
 * Without threshold invoices: a grant scoped to tokens and an unscoped purchased grant pay the period in burn-down
 * order, each line from the grants that may pay it. The credit for calls goes back only to the grant that paid the
 * calls; before, it went to the draw's grants newest first and the rest to the tokens-only grant.
 *   Apr 1   10.00 fee + 50.00 tokens + 30.00 calls: tokens-only 50.00 pays the tokens, purchased 20.00 pays 20.00 of
 *           the calls (all it has), 10.00 of the calls by card: total 10.00 + 10.00 = 20.00, paid
 *   calls fixed to 0.01: 3.00, −27.00: purchased gets 20.00 back (what it paid of the calls), 7.00 refunded in cash;
 *   the tokens-only grant stays at 50.00 (before: 20.00 to purchased and 7.00 to tokens-only, no refund).
 * The same give-back for a draw written before draws kept their lines (migration 0800; its rows removed here): the
 * grants whose scope covers calls take it, up to what they still hold of the draw; tokens-only is not one of them.
 */
test.each([['recorded line by line'], ['written before draws kept their lines']])('a credit for calls goes back only to the grant that paid the calls (draw %s)', async (draw) => {
  const name = draw.startsWith('recorded') ? 'rt-lines' : 'rt-legacy';
  const customer = await insertCustomer(db, { external_id: name });
  const plan = (version: number, callPrice: string) =>
    insertPlan(db, {
      code: name, version, billing_interval: 'P1M', flat_fee: '10.00',
      charges: [
        { metricCode: 'rt_tokens', price: { model: 'per_unit', unitPrice: '0.10' } },
        { metricCode: 'rt_calls', price: { model: 'per_unit', unitPrice: callPrice } },
      ] as never,
    });
  const [listed, fixed] = [await plan(1, '0.10'), await plan(2, '0.01')];
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: listed.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(march.start), current_period_start: new Date(march.start), current_period_end: new Date(march.end) })
    .returning('*');
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'tokens-only', source: 'promotional', amount: '100.00', effectiveAt: new Date(march.start), metricCodes: ['rt_tokens'] });
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'bought', source: 'purchased', amount: '20.00', priority: 1, effectiveAt: new Date(march.start) });
  await insertUsageEvents(db, [
    { customerId: customer.id, eventId: `${name}-tokens`, eventType: 'rt.tokens', occurredAt: new Date('2027-03-04T12:00:00Z'), properties: { n: '500' } },
    { customerId: customer.id, eventId: `${name}-calls`, eventType: 'rt.calls', occurredAt: new Date('2027-03-05T12:00:00Z'), properties: { n: '300' } },
  ]);
  await db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(march.start), periodEnd: new Date(march.end), planId: listed.id, charges: listed.charges as never }));
  const period = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: april, usagePeriod: march });
  expect(period.total).toBe('20.00');
  await paid(period.invoiceId, period.total);
  const wallet = (await findWallet(db, customer.id, 'USD'))!;
  if (!draw.startsWith('recorded')) await db('wallet_draw_lines').where({ wallet_id: wallet.id }).delete();

  const activities = createReratingActivities(db);
  const id = randomUUID();
  await db.transaction((trx) => insertRerate(trx, { id, invoiceId: period.invoiceId, subscriptionId: subscription.id, customerId: customer.id, requestedBy: 'finance', reason: 'price fix', correctedPlanId: fixed.id, includeLateUsage: false }));
  expect(await activities.proposeRerate({ rerateId: id })).toMatchObject({ outcome: 'credit', total: '-27.00' });
  await activities.recordRerateDecision({ rerateId: id, approved: true, by: 'finance', reason: 'ok' });
  await activities.finalizeRerate({ rerateId: id });
  expect((await db('rerates').where({ id }).first()).proposal.walletCreditBack).toBe('20.00');
  const grants = await db('wallet_grants').where({ wallet_id: wallet.id }).whereIn('grant_key', ['tokens-only', 'bought']).orderBy('grant_key');
  expect(grants.map((grant) => [grant.grant_key, money(grant.remaining)])).toEqual([['bought', '20.00'], ['tokens-only', '50.00']]);
  const notes = await db('invoices').where({ kind: 'credit_note', credited_invoice_id: period.invoiceId }).select('total');
  expect(notes.map((note) => money(note.total))).toEqual(['7.00']);
});
