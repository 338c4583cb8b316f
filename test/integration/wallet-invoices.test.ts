/**
 * Prepaid credit against Postgres (issue 12): grants and the append-only ledger with its running balance, the
 * period invoice drawing on the wallet in its own transaction (once, also when the activity runs again), expiry,
 * re-rating credit given back (to the grant, or as goodwill when it expired), and an overdraft repaid by a top-up.
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createGrant, expireGrants, findWallet, reverseWalletCredits, updateWalletSettings } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
const jan = { start: '2027-01-01T00:00:00.000Z', end: '2027-02-01T00:00:00.000Z' };
const feb = { start: '2027-02-01T00:00:00.000Z', end: '2027-03-01T00:00:00.000Z' };

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'w_tokens', name: 'Tokens', event_type: 'w.llm', aggregation: 'sum', property: 'tokens' });
});

afterAll(async () => {
  await db?.destroy();
});

/** A customer on a plan of 20.00 a month + 0.01 per token with a 5.00 credit bucket, with `tokens` used in January. */
async function januaryUsage(name: string, tokens: string) {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, {
    code: `w-${name}`,
    billing_interval: 'P1M',
    flat_fee: '20.00',
    charges: [{ metricCode: 'w_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }] as never,
    settings: { creditBucket: '5.00' },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(jan.start), current_period_start: new Date(jan.start), current_period_end: new Date(jan.end) })
    .returning('*');
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: `${name}-1`, eventType: 'w.llm', occurredAt: new Date('2027-01-10T00:00:00Z'), properties: { tokens } }]);
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(jan.start), periodEnd: new Date(jan.end), planId: plan.id, charges: plan.charges as never }),
  );
  return { customer, subscriptionId: subscription.id as string };
}

async function invoiceFebruary(subscriptionId: string) {
  const summary = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId, kind: 'period', flatFeePeriod: feb, usagePeriod: jan });
  const lines = await db('invoice_lines').where({ invoice_id: summary.invoiceId }).orderBy('position');
  return { summary, lines: lines.map((line) => [line.kind, line.description, String(line.amount)]) };
}

async function ledger(customerId: string) {
  const wallet = (await findWallet(db, customerId, 'USD'))!;
  const rows = await db('wallet_ledger').where({ wallet_id: wallet.id }).orderBy('id');
  return { balance: String(wallet.balance), entries: rows.map((row) => [row.kind, String(row.amount), String(row.balance_after)]) };
}

const money = (value: string) => Number(value).toFixed(2);

test('without a wallet the invoice is exactly what it was: fee, usage, credit bucket', async () => {
  const { subscriptionId } = await januaryUsage('plain', '1240');
  const { summary, lines } = await invoiceFebruary(subscriptionId);
  expect(summary.total).toBe('27.40');
  expect(lines.map(([kind, , amount]) => [kind, money(amount)])).toEqual([
    ['flat_fee', '20.00'],
    ['usage', '12.40'],
    ['credit', '-5.00'],
  ]);
});

test('two grants pay January usage after the credit bucket; the invoice shows one line per grant; the ledger keeps the running balance', async () => {
  const { customer, subscriptionId } = await januaryUsage('two-grants', '1240');
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '4.00', priority: 0, effectiveAt: new Date(jan.start), expiresAt: new Date('2027-03-01T00:00:00Z') });
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'bought', source: 'purchased', amount: '100.00', priority: 1, effectiveAt: new Date(jan.start) });
  // The same grant key again creates nothing.
  expect((await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '4.00', effectiveAt: new Date(jan.start) })).created).toBe(false);

  const { summary, lines } = await invoiceFebruary(subscriptionId);
  // 20.00 fee + 12.40 usage - 5.00 bucket - 4.00 promo - 3.40 purchased = 20.00 left to pay.
  expect(lines.map(([kind, description, amount]) => [kind, description, money(amount)])).toEqual([
    ['flat_fee', expect.any(String), '20.00'],
    ['usage', expect.any(String), '12.40'],
    ['credit', expect.any(String), '-5.00'],
    ['credit', 'Credits applied (promotional credit, expires 2027-03-01)', '-4.00'],
    ['credit', 'Credits applied (purchased credit)', '-3.40'],
  ]);
  expect(summary.total).toBe('20.00');
  expect(await ledger(customer.id)).toEqual({
    balance: '96.600000000000',
    entries: [
      ['grant', '4.000000000000', '4.000000000000'],
      ['grant', '100.000000000000', '104.000000000000'],
      // The plan's 5.00 bucket: a plan_included grant, consumed by its own line (docs/wallets.md).
      ['grant', '5.000000000000', '109.000000000000'],
      ['consumption', '-5.000000000000', '104.000000000000'],
      ['consumption', '-4.000000000000', '100.000000000000'],
      ['consumption', '-3.400000000000', '96.600000000000'],
    ],
  });

  // The activity again (a retry): the same invoice, nothing drawn twice.
  expect((await invoiceFebruary(subscriptionId)).summary).toEqual(summary);
  expect((await ledger(customer.id)).balance).toBe('96.600000000000');

  // Re-rating gives 3.00 back: to the purchased grant drawn last, still in effect.
  await reverseWalletCredits(db, { customerId: customer.id, currency: 'USD', drawKey: `invoice:${subscriptionId}:period:${feb.start}`, reversalKey: 'rerate-1', amount: '3.00', at: new Date('2027-02-10T00:00:00Z') });
  await reverseWalletCredits(db, { customerId: customer.id, currency: 'USD', drawKey: `invoice:${subscriptionId}:period:${feb.start}`, reversalKey: 'rerate-1', amount: '3.00', at: new Date('2027-02-10T00:00:00Z') });
  const afterReversal = await ledger(customer.id);
  expect(afterReversal.balance).toBe('99.600000000000');
  expect(afterReversal.entries.at(-1)).toEqual(['reversal', '3.000000000000', '99.600000000000']);
});

test('a fully covered invoice totals 0.00; an expired grant is a visible ledger entry; credit given back after expiry becomes goodwill', async () => {
  const { customer, subscriptionId } = await januaryUsage('covered', '900');
  // It expires as January (the invoiced usage) ends: an expiry inside February would be held until February's
  // usage is invoiced, since that invoice may still draw on it for the usage before the expiry.
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '30.00', effectiveAt: new Date(jan.start), expiresAt: new Date(jan.end) });
  await db('plans').where({ code: 'w-covered' }).update({ flat_fee: '0' });
  const { summary } = await invoiceFebruary(subscriptionId);
  // 9.00 usage - 5.00 bucket = 4.00, all paid by the grant.
  expect(summary.total).toBe('0.00');

  const wallet = (await findWallet(db, customer.id, 'USD'))!;
  expect((await expireGrants(db, wallet.id, new Date('2027-02-15T00:00:00Z'))).length).toBe(1);
  expect((await ledger(customer.id)).entries.at(-1)).toEqual(['expiry', '-26.000000000000', '0.000000000000']);

  await reverseWalletCredits(db, { customerId: customer.id, currency: 'USD', drawKey: `invoice:${subscriptionId}:period:${feb.start}`, reversalKey: 'rerate-2', amount: '1.50', at: new Date('2027-02-20T00:00:00Z') });
  const goodwill = await db('wallet_grants').where({ wallet_id: wallet.id, source: 'goodwill' }).first();
  expect(money(String(goodwill.remaining))).toBe('1.50');
  expect((await ledger(customer.id)).balance).toBe('1.500000000000');
});

test('an overdraft plan goes below zero up to its limit, and the next grant repays the overdraft first', async () => {
  const { customer, subscriptionId } = await januaryUsage('overdraft', '2000');
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'small', source: 'purchased', amount: '5.00', effectiveAt: new Date(jan.start) });
  const wallet = (await findWallet(db, customer.id, 'USD'))!;
  await updateWalletSettings(db, wallet.id, { overdraftLimit: '8.00' });
  // Nothing to change (PUT with only the currency) leaves the settings as they are (it was an empty UPDATE: a 500).
  expect((await updateWalletSettings(db, wallet.id, {})).overdraft_limit).toBe('8.000000000000');
  const { summary, lines } = await invoiceFebruary(subscriptionId);
  // 20.00 usage - 5.00 bucket = 15.00: 5.00 from the grant, 8.00 overdraft, 2.00 left with the 20.00 fee.
  expect(lines.slice(3).map(([, description, amount]) => [description, money(amount)])).toEqual([
    ['Credits applied (purchased credit)', '-5.00'],
    ['Credits applied (overdraft)', '-8.00'],
  ]);
  expect(summary.total).toBe('22.00');
  expect((await ledger(customer.id)).balance).toBe('-8.000000000000');

  const { grant } = await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'top-up', source: 'purchased', amount: '10.00', effectiveAt: new Date(feb.start) });
  expect(money(String(grant.remaining))).toBe('2.00');
  expect((await ledger(customer.id)).balance).toBe('2.000000000000');
});
