/**
 * The plan's credit bucket as a `plan_included` wallet grant (issue 12, docs/wallets.md): every credit-bucket
 * worked example invoiced through the invoicing activity gives, line by line, exactly the invoice it gave before
 * (kind, description, quantity, amount, breakdown: the hand-checked figures of test/unit/rating.test.ts and of
 * test/integration/wallet-invoices.test.ts), and the ledger records the bucket: grant, consumption, expiry.
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import { renewalInvoiceLines } from '../../domain/invoice';
import type { Charge } from '../../domain/rating';
import type { Database } from '../../store/database';
import { planIncludedGrantKey } from '../../store/plan-included-credits';
import { closeUsage, findUsageClosure, insertUsageEvents, NewUsageEvent } from '../../store/usage';
import { applyWalletCredits, createGrant, findWallet, updateWalletSettings } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
const jan = { start: '2027-01-01T00:00:00.000Z', end: '2027-02-01T00:00:00.000Z' };
const feb = { start: '2027-02-01T00:00:00.000Z', end: '2027-03-01T00:00:00.000Z' };

const charges: Charge[] = [
  { metricCode: 'pi_api_calls', chargeId: 'c-api', price: { model: 'per_unit', unitPrice: '0.001' } },
  { metricCode: 'pi_storage_gb', chargeId: 'c-storage', price: { model: 'per_unit', unitPrice: '0.20' } },
];

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert([
    { code: 'pi_api_calls', name: 'API calls', event_type: 'pi.call', aggregation: 'sum', property: 'calls' },
    { code: 'pi_storage_gb', name: 'Storage', event_type: 'pi.storage', aggregation: 'sum', property: 'gb' },
  ]);
});

afterAll(async () => {
  await db?.destroy();
});

interface Example {
  readonly name: string;
  readonly bucket: string;
  readonly minimumCommitment?: string;
  readonly apiCalls: number;
  readonly storageGb: string | null;
}

/** A customer on a plan of 20.00 a month + the charges above, with January usage closed. */
async function januaryUsage(example: Example) {
  const customer = await insertCustomer(db, { external_id: `pi-${example.name}` });
  const plan = await insertPlan(db, {
    code: `pi-${example.name}`,
    billing_interval: 'P1M',
    flat_fee: '20.00',
    charges: charges as never,
    settings: { creditBucket: example.bucket, ...(example.minimumCommitment ? { minimumCommitment: example.minimumCommitment } : {}) },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:pi-${example.name}`, start_at: new Date(jan.start), current_period_start: new Date(jan.start), current_period_end: new Date(jan.end) })
    .returning('*');
  const events: NewUsageEvent[] = [];
  if (example.apiCalls) events.push({ customerId: customer.id, eventId: `${example.name}-calls`, eventType: 'pi.call', occurredAt: new Date('2027-01-10T00:00:00Z'), properties: { calls: String(example.apiCalls) } });
  if (example.storageGb) events.push({ customerId: customer.id, eventId: `${example.name}-gb`, eventType: 'pi.storage', occurredAt: new Date('2027-01-11T00:00:00Z'), properties: { gb: example.storageGb } });
  if (events.length) await insertUsageEvents(db, events);
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(jan.start), periodEnd: new Date(jan.end), planId: plan.id, charges: plan.charges as never }),
  );
  return { customer, plan, subscriptionId: subscription.id as string };
}

async function invoiceFebruary(subscriptionId: string) {
  const summary = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId, kind: 'period', flatFeePeriod: feb, usagePeriod: jan });
  const rows = await db('invoice_lines').where({ invoice_id: summary.invoiceId }).orderBy('position');
  return { summary, rows };
}

/** A stored line as the invoice shows it, amounts to the minor unit. */
function shown(row: { kind: string; description: string; quantity: string; amount: string; breakdown: unknown }) {
  return { kind: row.kind, description: row.description, quantity: Number(row.quantity).toString(), amount: Number(row.amount).toFixed(2), breakdown: row.breakdown };
}

async function ledgerOf(customerId: string) {
  const wallet = (await findWallet(db, customerId, 'USD'))!;
  const rows = await db('wallet_ledger as l').join('wallet_grants as g', 'g.id', 'l.grant_id').where({ 'l.wallet_id': wallet.id }).orderBy('l.id').select('l.kind', 'l.amount', 'l.balance_after', 'g.source');
  return { balance: Number(wallet.balance).toFixed(2), entries: rows.map((row) => [row.kind, row.source, Number(row.amount).toFixed(2), Number(row.balance_after).toFixed(2)]) };
}

// The worked examples, with the invoice each gave before this change (fee 20.00 billed in advance for February,
// January's usage in arrears), computed by hand:
const examples: { example: Example; lines: [string, string, string][]; total: string; applied: string; expired: string }[] = [
  {
    // api 12,000 × 0.001 = 12.00; bucket 20.00 covers it: credit −12.00, 8.00 of the bucket unused → expires.
    // total 20.00 + 12.00 − 12.00 = 20.00
    example: { name: 'below-bucket', bucket: '20.00', apiCalls: 12000, storageGb: null },
    lines: [['flat_fee', 'pi-below-bucket subscription fee', '20.00'], ['usage', expect.any(String), '12.00'], ['usage', expect.any(String), '0.00'], ['credit', 'Included usage credit', '-12.00']] as never,
    total: '20.00',
    applied: '12.00',
    expired: '8.00',
  },
  {
    // api 12.00 + storage 50 × 0.20 = 10.00 → usage 22.00; credit −20.00 (all of it); total 20.00 + 22.00 − 20.00 = 22.00
    example: { name: 'used-up', bucket: '20', apiCalls: 12000, storageGb: '50' },
    lines: [['flat_fee', 'pi-used-up subscription fee', '20.00'], ['usage', expect.any(String), '12.00'], ['usage', expect.any(String), '10.00'], ['credit', 'Included usage credit', '-20.00']] as never,
    total: '22.00',
    applied: '20.00',
    expired: '0.00',
  },
  {
    // No usage: no credit line; the whole 20.00 bucket expires unused. total 20.00
    example: { name: 'no-usage', bucket: '20.00', apiCalls: 0, storageGb: null },
    lines: [['flat_fee', 'pi-no-usage subscription fee', '20.00'], ['usage', expect.any(String), '0.00'], ['usage', expect.any(String), '0.00']] as never,
    total: '20.00',
    applied: '0.00',
    expired: '20.00',
  },
  {
    // storage 300 × 0.20 = 60.00; credit −20.00; commitment 100.00 − 60.00 = 40.00 true-up (measured before the
    // credit). total 20.00 + 60.00 − 20.00 + 40.00 = 100.00
    example: { name: 'commitment', bucket: '20.00', minimumCommitment: '100.00', apiCalls: 0, storageGb: '300' },
    lines: [['flat_fee', 'pi-commitment subscription fee', '20.00'], ['usage', expect.any(String), '0.00'], ['usage', expect.any(String), '60.00'], ['credit', 'Included usage credit', '-20.00'], ['commitment_true_up', 'Minimum commitment true-up', '40.00']] as never,
    total: '100.00',
    applied: '20.00',
    expired: '0.00',
  },
  {
    // storage 62 × 0.20 = 12.40 (the 12.40 of wallet-invoices.test.ts); bucket 5.00: credit −5.00.
    // total 20.00 + 12.40 − 5.00 = 27.40
    example: { name: 'small-bucket', bucket: '5.00', apiCalls: 0, storageGb: '62' },
    lines: [['flat_fee', 'pi-small-bucket subscription fee', '20.00'], ['usage', expect.any(String), '0.00'], ['usage', expect.any(String), '12.40'], ['credit', 'Included usage credit', '-5.00']] as never,
    total: '27.40',
    applied: '5.00',
    expired: '0.00',
  },
];

describe.each(examples)('credit-bucket worked example $example.name', ({ example, lines, total, applied, expired }) => {
  test('the invoice is line by line what it was; the ledger records grant, consumption and expiry of the bucket', async () => {
    const { customer, plan, subscriptionId } = await januaryUsage(example);
    const { summary, rows } = await invoiceFebruary(subscriptionId);

    // 1. The hand-computed invoice.
    expect(rows.map((row) => [row.kind, row.description, Number(row.amount).toFixed(2)])).toEqual(lines);
    expect(summary.total).toBe(total);

    // 2. Line by line (kind, description, quantity, amount, breakdown) what the pure invoice builder gives without
    //    any wallet: the function that built these invoices before the bucket became a grant.
    const closure = (await findUsageClosure(db, subscriptionId, new Date(jan.start)))!;
    const before = renewalInvoiceLines({
      planName: plan.name,
      currency: 'USD',
      flatFee: '20',
      charges,
      flatFeePeriod: feb,
      usage: { period: jan, totals: Object.entries(closure.totals as Record<string, { quantity: string }>).map(([metricCode, usage]) => ({ metricCode, quantity: usage.quantity })) },
      creditBucket: example.bucket,
      minimumCommitment: example.minimumCommitment,
    });
    expect(rows.map(shown)).toEqual(before.map((line) => shown({ ...line, quantity: line.quantity, amount: line.amount, breakdown: line.breakdown })));

    // 3. The ledger: the bucket granted, what its line covered consumed, the unused rest expired; the balance nets to 0.
    const bucket = Number(example.bucket).toFixed(2);
    const afterGrant = bucket;
    const afterConsumption = (Number(bucket) - Number(applied)).toFixed(2);
    expect(await ledgerOf(customer.id)).toEqual({
      balance: '0.00',
      entries: [
        ['grant', 'plan_included', bucket, afterGrant],
        ...(applied !== '0.00' ? [['consumption', 'plan_included', `-${applied}`, afterConsumption]] : []),
        ...(expired !== '0.00' ? [['expiry', 'plan_included', `-${expired}`, '0.00']] : []),
      ],
    });
    const wallet = (await findWallet(db, customer.id, 'USD'))!;
    const grant = await db('wallet_grants').where({ wallet_id: wallet.id, grant_key: planIncludedGrantKey(subscriptionId, jan.start) }).first();
    expect(grant).toMatchObject({ source: 'plan_included', effective_at: new Date(jan.start), expires_at: new Date(jan.end) });
    expect(Number(grant.amount).toFixed(2)).toBe(bucket);
    expect(Number(grant.remaining).toFixed(2)).toBe('0.00');

    // 4. The activity again (a retry): the same invoice, the bucket recorded once.
    expect((await invoiceFebruary(subscriptionId)).summary).toEqual(summary);
    expect((await ledgerOf(customer.id)).entries.length).toBe(1 + (applied !== '0.00' ? 1 : 0) + (expired !== '0.00' ? 1 : 0));
  });
});

test('with other grants and an overdraft, the bucket line is unchanged, the plan_included grant pays nothing more and repays no overdraft', async () => {
  const { customer, subscriptionId } = await januaryUsage({ name: 'with-wallet', bucket: '5.00', apiCalls: 0, storageGb: '100' });
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '4.00', effectiveAt: new Date(jan.start), expiresAt: new Date(feb.end) });
  const wallet = (await findWallet(db, customer.id, 'USD'))!;
  await updateWalletSettings(db, wallet.id, { overdraftLimit: '10.00' });
  // An earlier draw of 7.00: the promo's 4.00, then 3.00 into the overdraft (balance −3.00).
  await db.transaction((trx) =>
    applyWalletCredits(trx, { customerId: customer.id, currency: 'USD', drawKey: 'earlier', charges: [{ metricCode: null, amount: '7.00' }], during: { from: new Date(jan.start), to: new Date(jan.end) }, description: 'earlier usage' }),
  );

  const { summary, rows } = await invoiceFebruary(subscriptionId);
  // storage 100 × 0.20 = 20.00; bucket −5.00 (as before); the wallet pays from the 15.00 left what the overdraft
  // still allows: limit 10.00 − 3.00 already overdrawn = 7.00; 8.00 left to pay.
  // total 20.00 + 20.00 − 5.00 − 7.00 = 28.00
  expect(rows.map((row) => [row.kind, row.description, Number(row.amount).toFixed(2)])).toEqual([
    ['flat_fee', 'pi-with-wallet subscription fee', '20.00'],
    ['usage', expect.any(String), '0.00'],
    ['usage', expect.any(String), '20.00'],
    ['credit', 'Included usage credit', '-5.00'],
    ['credit', 'Credits applied (overdraft)', '-7.00'],
  ]);
  expect(summary.total).toBe('28.00');
  const rowsOfLedger = await db('wallet_ledger').where({ wallet_id: wallet.id }).orderBy('id');
  // The plan's 5.00 granted and consumed by its own line: nothing of it repays the 3.00 overdraft.
  expect(rowsOfLedger.map((row) => [row.kind, Number(row.amount).toFixed(2), Number(row.balance_after).toFixed(2)])).toEqual([
    ['grant', '4.00', '4.00'],
    ['consumption', '-4.00', '0.00'],
    ['consumption', '-3.00', '-3.00'],
    ['grant', '5.00', '2.00'],
    ['consumption', '-5.00', '-3.00'],
    ['consumption', '-7.00', '-10.00'],
  ]);
});
