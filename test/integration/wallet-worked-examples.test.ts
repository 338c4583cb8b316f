/**
 * Worked examples of prepaid credit on real invoices (issue 12, docs/wallets.md), every amount a decimal string
 * checked to the minor unit and computed by hand in the comments. The plan: 20.00 a month + 0.01 a token, with a
 * 5.00 credit bucket; January's usage is invoiced on the February invoice. (The credit-bucket invoices themselves
 * are compared line by line in wallet-plan-included.test.ts.)
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createGrant, findWallet, NewGrant, updateWalletSettings } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
const jan = { start: '2027-01-01T00:00:00.000Z', end: '2027-02-01T00:00:00.000Z' };
const feb = { start: '2027-02-01T00:00:00.000Z', end: '2027-03-01T00:00:00.000Z' };
const day = (n: number) => new Date(Date.UTC(2027, 0, n));

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'we_tokens', name: 'Tokens', event_type: 'we.llm', aggregation: 'sum', property: 'tokens' });
});

afterAll(async () => {
  await db?.destroy();
});

type GrantSpec = Omit<NewGrant, 'customerId' | 'currency' | 'effectiveAt'> & { effectiveAt?: Date };

/** January usage (`[day, tokens]` pairs), the grants, then February's invoice: its lines and the ledger. */
async function invoiceWith(name: string, usage: [number, string][], grants: GrantSpec[], overdraftLimit?: string) {
  const customer = await insertCustomer(db, { external_id: `we-${name}` });
  const plan = await insertPlan(db, { code: `we-${name}`, billing_interval: 'P1M', flat_fee: '20.00', charges: [{ metricCode: 'we_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }] as never, settings: { creditBucket: '5.00' } });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:we-${name}`, start_at: new Date(jan.start), current_period_start: new Date(jan.start), current_period_end: new Date(jan.end) })
    .returning('*');
  await insertUsageEvents(db, usage.map(([on, tokens], index) => ({ customerId: customer.id, eventId: `${name}-${index}`, eventType: 'we.llm', occurredAt: day(on), properties: { tokens } })));
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(jan.start), periodEnd: new Date(jan.end), planId: plan.id, charges: plan.charges as never }),
  );
  for (const grant of grants) await createGrant(db, { customerId: customer.id, currency: 'USD', effectiveAt: day(1), ...grant });
  if (overdraftLimit) await updateWalletSettings(db, (await findWallet(db, customer.id, 'USD'))!.id, { overdraftLimit });
  const summary = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: feb, usagePeriod: jan });
  const lines = await db('invoice_lines').where({ invoice_id: summary.invoiceId }).orderBy('position');
  const wallet = (await findWallet(db, customer.id, 'USD'))!;
  const grantRows = await db('wallet_grants').where({ wallet_id: wallet.id });
  return {
    total: summary.total,
    lines: lines.map((line) => [line.kind, line.description, Number(line.amount).toFixed(2)]),
    balance: Number(wallet.balance).toFixed(2),
    remaining: Object.fromEntries(grantRows.map((grant) => [grant.grant_key.split(':')[0], Number(grant.remaining).toFixed(2)])),
  };
}

test('burn-down across three grants with different priorities and expiries', async () => {
  //   goodwill   priority 0, expires 2027-03-01,  5.00   lowest priority number: first of all
  //   promo      priority 1, expires 2027-02-20, 10.00   same priority as purchased, expires first: second
  //   purchased  priority 1, no expiry,          50.00   last
  // January: 2,737 tokens × 0.01 = 27.37; bucket −5.00 → 22.37 for the wallet: 5.00 + 10.00 + 7.37.
  // total 20.00 + 27.37 − 5.00 − 5.00 − 10.00 − 7.37 = 20.00 (the fee: the wallet never pays it)
  const invoice = await invoiceWith('three', [[10, '2737']], [
    { grantKey: 'purchased', source: 'purchased', amount: '50.00', priority: 1 },
    { grantKey: 'promo', source: 'promotional', amount: '10.00', priority: 1, expiresAt: new Date('2027-02-20T00:00:00Z') },
    { grantKey: 'goodwill', source: 'goodwill', amount: '5.00', priority: 0, expiresAt: new Date('2027-03-01T00:00:00Z') },
  ]);
  expect(invoice.lines).toEqual([
    ['flat_fee', 'we-three subscription fee', '20.00'],
    ['usage', expect.any(String), '27.37'],
    ['credit', 'Included usage credit', '-5.00'],
    ['credit', 'Credits applied (goodwill credit, expires 2027-03-01)', '-5.00'],
    ['credit', 'Credits applied (promotional credit, expires 2027-02-20)', '-10.00'],
    ['credit', 'Credits applied (purchased credit)', '-7.37'],
  ]);
  expect(invoice.total).toBe('20.00');
  expect(invoice.remaining).toEqual({ goodwill: '0.00', promo: '0.00', purchased: '42.63', plan_included: '0.00' });
  expect(invoice.balance).toBe('42.63'); // 65.00 − 22.37
});

test('a grant expiring mid-period pays the usage before its expiry, not the usage after it', async () => {
  // Timeline (January 2027):
  //   Jan 10   600 tokens = 6.00   the bucket covers the first 5.00 of the period's usage: 1.00 left to pay
  //   Jan 16   the promo (30.00, priority 0) expires
  //   Jan 20   640 tokens = 6.40   after the promo's expiry: not the promo's to pay
  // The promo pays 1.00 (not 7.40, though 30.00 would cover it); the purchased grant (priority 1) pays 6.40.
  // total 20.00 + 12.40 − 5.00 − 1.00 − 6.40 = 20.00
  const both = await invoiceWith('mid', [[10, '600'], [20, '640']], [
    { grantKey: 'promo', source: 'promotional', amount: '30.00', priority: 0, expiresAt: new Date('2027-01-16T00:00:00Z') },
    { grantKey: 'purchased', source: 'purchased', amount: '100.00', priority: 1 },
  ]);
  expect(both.lines).toEqual([
    ['flat_fee', 'we-mid subscription fee', '20.00'],
    ['usage', expect.any(String), '12.40'],
    ['credit', 'Included usage credit', '-5.00'],
    ['credit', 'Credits applied (promotional credit, expires 2027-01-16)', '-1.00'],
    ['credit', 'Credits applied (purchased credit)', '-6.40'],
  ]);
  expect(both.total).toBe('20.00');
  expect(both.remaining).toMatchObject({ promo: '29.00', purchased: '93.60' });

  // The promo alone: the usage after its expiry is left to pay. total 20.00 + 12.40 − 5.00 − 1.00 = 26.40
  const alone = await invoiceWith('mid-alone', [[10, '600'], [20, '640']], [
    { grantKey: 'promo', source: 'promotional', amount: '30.00', priority: 0, expiresAt: new Date('2027-01-16T00:00:00Z') },
  ]);
  expect(alone.lines.slice(3)).toEqual([['credit', 'Credits applied (promotional credit, expires 2027-01-16)', '-1.00']]);
  expect(alone.total).toBe('26.40');

  // All usage before the expiry: the promo pays all of it. 300 + 940 tokens by Jan 12: 12.40 − 5.00 = 7.40.
  const early = await invoiceWith('mid-early', [[10, '300'], [12, '940']], [
    { grantKey: 'promo', source: 'promotional', amount: '30.00', priority: 0, expiresAt: new Date('2027-01-16T00:00:00Z') },
  ]);
  expect(early.lines.slice(3)).toEqual([['credit', 'Credits applied (promotional credit, expires 2027-01-16)', '-7.40']]);
  expect(early.total).toBe('20.00');
});

test('an overdraft plan: past the grants, usage draws into the overdraft up to its limit, the rest is invoiced', async () => {
  // January: 2,400 tokens = 24.00; bucket −5.00 → 19.00: the 3.00 grant, then 10.00 of overdraft (the limit),
  // 6.00 left to pay. total 20.00 + 24.00 − 5.00 − 3.00 − 10.00 = 26.00; balance 3.00 − 13.00 = −10.00
  const invoice = await invoiceWith('overdraft', [[10, '2400']], [{ grantKey: 'small', source: 'purchased', amount: '3.00' }], '10.00');
  expect(invoice.lines.slice(2)).toEqual([
    ['credit', 'Included usage credit', '-5.00'],
    ['credit', 'Credits applied (purchased credit)', '-3.00'],
    ['credit', 'Credits applied (overdraft)', '-10.00'],
  ]);
  expect(invoice.total).toBe('26.00');
  expect(invoice.balance).toBe('-10.00');
});
