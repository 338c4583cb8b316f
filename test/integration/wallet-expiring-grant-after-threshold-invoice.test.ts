/**
 * A grant that expires inside a period pays only for the usage before its expiry, and never for usage a threshold
 * invoice already billed. The cap (what the usage before the expiry made payable) left out the threshold invoices,
 * while the invoice's payable charges take them off first: the usage before the expiry, paid in cash on the
 * threshold invoice, still counted as the grant's to pay, so the expired grant paid usage from after its expiry.
 *
 *   Jan 5   5000 tokens (50.00)
 *   Jan 10  threshold invoice bills 50.00 (paid in cash)
 *   Jan 15  the 100.00 promotional grant expires
 *   Jan 25  3000 tokens (30.00): after the expiry, not the grant's to pay
 *   Feb 1   invoice: 20.00 fee + 80.00 usage - 50.00 billed on the threshold invoice = 50.00, nothing from the grant
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createGrant } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
const jan = { start: '2031-01-01T00:00:00.000Z', end: '2031-02-01T00:00:00.000Z' };
const feb = { start: '2031-02-01T00:00:00.000Z', end: '2031-03-01T00:00:00.000Z' };

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'thx_tokens', name: 'Tokens', event_type: 'thx.llm', aggregation: 'sum', property: 'tokens' }).onConflict('code').ignore();
});

afterAll(async () => {
  await db?.destroy();
});

test('a grant expiring mid-period does not pay, after a threshold invoice, for the usage after its expiry', async () => {
  const customer = await insertCustomer(db, { external_id: 'thx-expiring' });
  const plan = await insertPlan(db, {
    code: 'thx-expiring',
    billing_interval: 'P1M',
    flat_fee: '20.00',
    charges: [{ metricCode: 'thx_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }] as never,
    settings: { usageThresholds: { amounts: ['50.00'] } },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:thx-expiring', start_at: new Date(jan.start), current_period_start: new Date(jan.start), current_period_end: new Date(jan.end) })
    .returning('*');
  await insertUsageEvents(db, [
    { customerId: customer.id, eventId: 'thx-1', eventType: 'thx.llm', occurredAt: new Date('2031-01-05T00:00:00Z'), properties: { tokens: '5000' } },
    { customerId: customer.id, eventId: 'thx-2', eventType: 'thx.llm', occurredAt: new Date('2031-01-25T00:00:00Z'), properties: { tokens: '3000' } },
  ]);
  // The threshold invoice of Jan 10: the 50.00 accrued by then, finalized and paid.
  await db('invoices').insert({
    customer_id: customer.id,
    subscription_id: subscription.id,
    kind: 'threshold',
    status: 'paid',
    currency: 'USD',
    period_start: new Date(jan.start),
    period_end: new Date('2031-01-10T00:00:00Z'),
    threshold_index: 1,
    threshold_amount: '50.00',
    total: '50.00',
    number: 'THX-000001',
    finalization_seq: 900_001,
  });
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'thx-promo', source: 'promotional', amount: '100.00', effectiveAt: new Date(jan.start), expiresAt: new Date('2031-01-15T00:00:00Z') });

  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(jan.start), periodEnd: new Date(jan.end), planId: plan.id, charges: plan.charges as never }),
  );
  const summary = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: feb, usagePeriod: jan });
  const lines = (await db('invoice_lines').where({ invoice_id: summary.invoiceId }).orderBy('position')).map((line) => [line.kind, Number(line.amount).toFixed(2)]);
  expect({ total: summary.total, lines }).toEqual({
    total: '50.00',
    lines: [
      ['flat_fee', '20.00'],
      ['usage', '80.00'],
      ['threshold_credit', '-50.00'],
    ],
  });
});
