/**
 * The wallet's available balance (balance minus pending usage: GET /v1/customers/:id/wallet, the wallet entitlement,
 * the balance watch) is what the wallet is left with once the open usage is invoiced: the pending usage is what the
 * invoice's draw will take. It counted the rated usage after the credit bucket instead, so it disagreed with the draw:
 *
 *   200.00 promotional credit, 20.00 fee, January 10 units at 1.00; the Feb 1 invoice draws:
 *   - minimum commitment 50.00: usage 10.00 + true-up 40.00 = 50.00, 150.00 left    (shown before: 190.00)
 *   - the grant scoped to another metric: nothing (10.00 in cash), 200.00 left     (shown before: 190.00)
 *   - the grant in effect only from March: nothing (10.00 in cash), 200.00 left    (shown before: 190.00)
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { availableBalance, createGrant, findWallet, NewGrant } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
const jan = { start: '2031-01-01T00:00:00.000Z', end: '2031-02-01T00:00:00.000Z' };
const feb = { start: '2031-02-01T00:00:00.000Z', end: '2031-03-01T00:00:00.000Z' };

beforeAll(async () => {
  db = await createTestDatabase();
  for (const code of ['wad_a', 'wad_b']) await db('billable_metrics').insert({ code, name: code, event_type: `wad.${code}`, aggregation: 'sum', property: 'n' }).onConflict('code').ignore();
});

afterAll(async () => {
  await db?.destroy();
});

/** January's usage, the available balance shown before the Feb 1 invoice, and what that invoice drew. */
async function shownThenBilled(name: string, settings: Record<string, unknown>, grant: Partial<NewGrant>) {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, {
    code: name,
    billing_interval: 'P1M',
    flat_fee: '20.00',
    charges: [
      { metricCode: 'wad_a', price: { model: 'per_unit', unitPrice: '1.00' } },
      { metricCode: 'wad_b', price: { model: 'per_unit', unitPrice: '1.00' } },
    ] as never,
    settings,
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(jan.start), current_period_start: new Date(jan.start), current_period_end: new Date(jan.end) })
    .returning('*');
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: `${name}-1`, eventType: 'wad.wad_a', occurredAt: new Date('2031-01-10T00:00:00Z'), properties: { n: '10' } }]);
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: `${name}-grant`, source: 'promotional', amount: '200.00', effectiveAt: new Date(jan.start), ...grant });
  const shown = await availableBalance(db, customer.id, 'USD');
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(jan.start), periodEnd: new Date(jan.end), planId: plan.id, charges: plan.charges as never }),
  );
  const summary = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: feb, usagePeriod: jan, discountPercentOff: null });
  const drawn = (await db('invoice_lines').where({ invoice_id: summary.invoiceId, kind: 'credit' })).map((line) => Number(line.amount).toFixed(2));
  const left = Number((await findWallet(db, customer.id, 'USD'))!.balance).toFixed(2);
  return { shown, drawn, left };
}

test('a minimum commitment: the true-up the invoice draws is pending too', async () => {
  expect(await shownThenBilled('wad-commitment', { minimumCommitment: '50.00' }, {})).toEqual({ shown: '150.00', drawn: ['-50.00'], left: '150.00' });
});

test('a grant scoped to another metric pays none of this usage: nothing is pending on it', async () => {
  expect(await shownThenBilled('wad-scoped', {}, { metricCodes: ['wad_b'] })).toEqual({ shown: '200.00', drawn: [], left: '200.00' });
});

test('a grant not in effect during the usage pays none of it: nothing is pending on it', async () => {
  expect(await shownThenBilled('wad-later', {}, { effectiveAt: new Date('2031-03-01T00:00:00Z') })).toEqual({ shown: '200.00', drawn: [], left: '200.00' });
});

test('an unscoped grant in effect: the usage is pending, as before', async () => {
  expect(await shownThenBilled('wad-plain', {}, {})).toEqual({ shown: '190.00', drawn: ['-10.00'], left: '190.00' });
});
