/**
 * A finalizer that crashes right after its commit leaves the invoice finalized (content frozen, in the numbering
 * queue) but without its number until the next numbering run. What finance and customers read must never show it
 * as a draft without a number: GET /v1/invoices/:id, its document and the listing number it first (the same
 * repair the charge and the janitor do), so the same invoice never reads "draft, no number" then "INV-000001".
 */
import type { Database } from '../../store/database';
import { finalizeInvoice, insertDraftInvoice, InvoiceRow } from '../../store/invoices';
import { inTransaction } from '../../store/transactions';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let finance: TestApiKey;
let customerId: string;
let subscriptionId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  const customer = await insertCustomer(db, { name: 'Crash Co' });
  const plan = await insertPlan(db, { code: 'crash-plan', billing_interval: 'P1M', flat_fee: '10.00' });
  const { row: subscription } = await insertSubscription(db, customer, plan, new Date('2031-01-01T00:00:00Z'));
  customerId = customer.id;
  subscriptionId = subscription.id;
  finance = await createTestApiKey(db, 'finance');
  api = await serveApiOnly(db);
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const monthStart = (month: number): string => new Date(Date.UTC(2031, month, 1)).toISOString();

/** The finalizing transaction alone, as a crash right after its commit leaves it: no numbering step. */
async function finalizeWithoutNumbering(month: number): Promise<InvoiceRow> {
  return inTransaction(db, async (trx) => {
    const period = { start: monthStart(month), end: monthStart(month + 1) };
    const draft = (await insertDraftInvoice(trx, { customerId, subscriptionId, kind: 'period', currency: 'USD', periodStart: period.start, periodEnd: period.end }))!;
    return finalizeInvoice(trx, draft, [
      { kind: 'flat_fee', description: 'Crash plan', metricCode: null, quantity: '1', amount: '10.00', periodStart: period.start, periodEnd: period.end, breakdown: {} },
    ]);
  });
}

test('GET /v1/invoices/:id of an invoice whose finalizer crashed before numbering shows it issued, with its number', async () => {
  const invoice = await finalizeWithoutNumbering(0);
  const read = await api.http.call('GET', `/v1/invoices/${invoice.id}`, undefined, finance.headers);
  expect(read.status).toBe(200);
  expect({ number: read.json.number, status: read.json.status, total: read.json.total }).toEqual({ number: expect.stringMatching(/^INV-\d{6}$/), status: 'open', total: '10.00' });
  expect(read.json.finalized_at).not.toBeNull();
});

test('its HTML document shows its number, not DRAFT', async () => {
  const invoice = await finalizeWithoutNumbering(1);
  const html = await api.http.call('GET', `/v1/invoices/${invoice.id}/document.html`, undefined, finance.headers);
  expect(html.status).toBe(200);
  expect(html.text).not.toContain('Not issued yet');
  const { number } = await db('invoices').where({ id: invoice.id }).first('number');
  expect(number).toMatch(/^INV-\d{6}$/);
  expect(html.headers.get('content-disposition')).toBe(`inline; filename="${number}.html"`);
});

test('the listing shows it numbered and open, also when filtered on status=open', async () => {
  const invoice = await finalizeWithoutNumbering(2);
  const open = await api.http.call('GET', `/v1/invoices?subscription_id=${subscriptionId}&status=open`, undefined, finance.headers);
  expect(open.status).toBe(200);
  const listed = (open.json.data as { id: string; number: string | null; status: string }[]).find((row) => row.id === invoice.id);
  expect(listed).toEqual(expect.objectContaining({ status: 'open', number: expect.stringMatching(/^INV-\d{6}$/) }));
});
