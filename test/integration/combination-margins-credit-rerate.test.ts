/**
 * Per-combination margins count a combination's corrections (docs/pricing.md "Margins per combination"). A
 * re-rating that bills more is carried out by an adjustment invoice whose usage lines name their combination; one
 * that credits is carried out by a credit note (one refund line) or by giving the wallet's share back, and its
 * per-combination lines live only in the re-rating's proposal. Those must lower the combination's revenue too,
 * else a combination the customer was credited for still shows what it billed before the correction.
 */
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { marginReport } from '../../store/margins';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

const MARCH = new Date('2034-03-01T00:00:00Z');
const APRIL = new Date('2034-04-01T00:00:00Z');
const MAY = new Date('2034-05-01T00:00:00Z');
const LARGE = 'model=large';
const SMALL = 'model=small';

test('a re-rating carried out as a credit note lowers the revenue of the combinations it corrects', async () => {
  // March usage, billed on the April invoice: large 50.00, small 10.00. A re-rating finds large over-billed by 20.00
  // and small under-billed by 2.00: a credit of 18.00, carried out as a credit note against the April invoice.
  //   subscription revenue (March) = 60.00 - 18.00 = 42.00; per combination: large 30.00, small 12.00.
  await db('billable_metrics').insert({ code: 'rr_tokens', name: 'Tokens', event_type: 'rr.usage', aggregation: 'sum', property: 'tokens', group_by: JSON.stringify(['model']) });
  const customer = await insertCustomer(db, { external_id: 'credit-rerate-combinations' });
  const plan = await insertPlan(db, { code: 'credit-rerate-combinations', billing_interval: 'P1M', flat_fee: '0' });
  const { row: subscription } = await insertSubscription(db, customer, plan, MARCH);
  const [april] = await db<InvoiceRow>('invoices')
    .insert({ number: 'CR-04', customer_id: customer.id, subscription_id: subscription.id, kind: 'period', status: 'paid', currency: 'USD', period_start: APRIL, period_end: MAY, total: '60.00', finalized_at: APRIL })
    .returning('*');
  const usageLine = (position: number, key: string, amount: string) => ({
    invoice_id: april.id, position, kind: 'usage', description: `Tokens (${key})`, metric_code: 'rr_tokens', quantity: '1', amount,
    period_start: MARCH, period_end: APRIL, breakdown: JSON.stringify({ dimensionKey: key, dimensions: { model: key.split('=')[1] } }),
  });
  await db('invoice_lines').insert([usageLine(0, LARGE, '50.00'), usageLine(1, SMALL, '10.00')]);
  const [note] = await db('invoices')
    .insert({ number: 'CN-1', customer_id: customer.id, subscription_id: subscription.id, kind: 'credit_note', status: 'paid', currency: 'USD', period_start: APRIL, period_end: MAY, total: '18.00', finalized_at: APRIL, credited_invoice_id: april.id, idempotency_key: 'rerate:cr-1', reason: 're-rating' })
    .returning('*');
  await db('invoice_lines').insert({ invoice_id: note.id, position: 0, kind: 'refund', description: 'Refund for invoice CR-04: re-rating', quantity: '1', amount: '18.00', period_start: APRIL, period_end: MAY, breakdown: JSON.stringify({}) });
  const correction = (key: string, amount: string) => ({
    kind: 'usage', description: `Tokens (${key}) (correction)`, metricCode: 'rr_tokens', quantity: '1', amount,
    periodStart: MARCH.toISOString(), periodEnd: APRIL.toISOString(), breakdown: { previouslyInvoiced: '0', recomputed: '0', dimensionKey: key },
  });
  await db('rerates').insert({
    invoice_id: april.id, subscription_id: subscription.id, customer_id: customer.id, status: 'finalized', requested_by: 'finance', reason: 'over-billed',
    proposal: JSON.stringify({ usagePeriod: { start: MARCH.toISOString(), end: APRIL.toISOString() }, lines: [correction(LARGE, '-20.00'), correction(SMALL, '2.00')], total: '-18.00', outcome: 'credit', lateEventIds: [] }),
    result_invoice_id: note.id,
  });

  const report = await marginReport(db, { from: MARCH, to: APRIL, subscriptionIds: [subscription.id] });
  expect(report.subscriptions[0].revenue).toBe('42.00');
  expect(report.subscriptions[0].combinations?.map((line) => [line.dimensionKey, line.revenue])).toEqual([
    [SMALL, '12.00'],
    [LARGE, '30.00'],
  ]);
});
