/**
 * GET /v1/invoices/:id/document.html and /document.pdf over real HTTP and Postgres: an invoice written the way
 * invoicing writes it (rated lines with their breakdowns, numbered, total = sum of lines) and a credit note against
 * it come back as documents that show every line, its tiers and the total; the roles are those of GET /v1/invoices/:id.
 */
import { randomUUID } from 'node:crypto';
import { invoiceTotal, renewalInvoiceLines } from '../../domain/invoice';
import type { Charge } from '../../domain/rating';
import type { Database } from '../../store/database';
import { insertDraftInvoice, insertInvoiceLines, InvoiceRow } from '../../store/invoices';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { inspectPdf, pdftotext } from '../support/pdf';

let db: Database;
let api: ApiOnly;
const keys = {} as Record<'admin' | 'finance' | 'app' | 'monitoring' | 'customer_usage', TestApiKey>;
let invoice: InvoiceRow;
let creditNoteId: string;

const CHARGES: Charge[] = [
  {
    metricCode: 'doc_tokens',
    displayName: 'Tokens <beta> & "friends"',
    price: { model: 'graduated', tiers: [{ upTo: '10000', unitPrice: '0.0005' }, { upTo: null, unitPrice: '0.0002' }] },
  },
];

beforeAll(async () => {
  db = await createTestDatabase();
  const customer = await insertCustomer(db, { name: 'Docs & Co <Ltd>', email: 'ap@docs.test' });
  const plan = await insertPlan(db, { code: 'docs-plan', billing_interval: 'P1M', flat_fee: '20.00', charges: CHARGES as never });
  const { row: subscription } = await insertSubscription(db, customer, plan, new Date('2026-10-01T00:00:00Z'));
  for (const role of ['admin', 'finance', 'app', 'monitoring'] as const) keys[role] = await createTestApiKey(db, role);
  keys.customer_usage = await createTestApiKey(db, 'customer_usage', { customerId: customer.id });

  const period = { start: '2026-11-01T00:00:00.000Z', end: '2026-12-01T00:00:00.000Z' };
  const lines = renewalInvoiceLines({
    planName: 'Docs plan',
    currency: 'USD',
    flatFee: '20.00',
    charges: CHARGES,
    flatFeePeriod: period,
    usage: { period: { start: '2026-10-01T00:00:00.000Z', end: period.start }, totals: [{ metricCode: 'doc_tokens', quantity: '25000' }] },
    creditBucket: '2.00',
  });
  invoice = await db.transaction(async (trx) => {
    const draft = (await insertDraftInvoice(trx, { customerId: customer.id, subscriptionId: subscription.id, kind: 'period', currency: 'USD', periodStart: period.start, periodEnd: period.end }))!;
    await insertInvoiceLines(trx, draft.id, lines);
    const [finalized] = await trx<InvoiceRow>('invoices')
      .where({ id: draft.id })
      .update({ number: 'INV-000101', status: 'paid', total: invoiceTotal(lines, 'USD'), finalized_at: new Date('2026-11-01T00:00:03Z'), paid_at: new Date('2026-11-01T00:00:04Z') })
      .returning('*');
    return finalized;
  });
  const [note] = await db('invoices')
    .insert({
      number: 'CN-000007',
      customer_id: customer.id,
      subscription_id: null,
      kind: 'credit_note',
      status: 'paid',
      currency: 'USD',
      period_start: invoice.period_start,
      period_end: invoice.period_end,
      total: '4.00',
      finalized_at: new Date('2026-11-05T10:00:00Z'),
      credited_invoice_id: invoice.id,
      idempotency_key: 'doc-test',
      reason: 'Goodwill (outage)',
    })
    .returning('id');
  creditNoteId = note.id;
  await db('invoice_lines').insert({
    invoice_id: creditNoteId,
    position: 0,
    kind: 'refund',
    description: 'Refund for invoice INV-000101: Goodwill (outage)',
    quantity: '1',
    amount: '4.00',
    period_start: invoice.period_start,
    period_end: invoice.period_end,
    breakdown: JSON.stringify({ credited_invoice_id: invoice.id, paid: '26.00', previously_credited: '0' }),
  });
  api = await serveApiOnly(db);
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test('the HTML document shows every line, the tier breakdown and the total, escaped', async () => {
  const json = await api.http.call('GET', `/v1/invoices/${invoice.id}`, undefined, keys.finance.headers);
  const html = await api.http.call('GET', `/v1/invoices/${invoice.id}/document.html`, undefined, keys.finance.headers);
  expect(html.status).toBe(200);
  expect(html.type).toBe('text/html; charset=utf-8');
  expect(html.headers.get('content-disposition')).toBe('inline; filename="INV-000101.html"');
  expect(html.headers.get('content-security-policy')).toContain("default-src 'none'");
  for (const line of json.json.lines as { description: string; amount: string }[]) {
    expect(html.text).toContain(line.description.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;'));
    expect(html.text).toContain(`<td class="num amount">${line.amount}</td>`);
  }
  // 25,000 tokens: 10,000 x 0.0005 + 15,000 x 0.0002 = 8.00; credit 2.00; fee 20.00 -> 26.00.
  expect(html.text).toContain('<td class="breakdown-label">Tier 1: 0 to 10000</td>');
  expect(html.text).toContain('15000 × 0.0002 = 3');
  expect(html.text).toContain(`<td class="num total">${json.json.total} USD</td>`);
  expect(json.json.total).toBe('26.00');
  expect(html.text).toContain('Docs &amp; Co &lt;Ltd&gt;');
  expect(html.text).not.toContain('<beta>');
});

test('the PDF document is a valid PDF with the same lines and total, readable by pdftotext', async () => {
  const json = await api.http.call('GET', `/v1/invoices/${invoice.id}`, undefined, keys.app.headers);
  const response = await fetch(`${api.http.baseUrl}/v1/invoices/${invoice.id}/document.pdf?download=1`, { headers: keys.app.headers });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('application/pdf');
  expect(response.headers.get('content-disposition')).toBe('attachment; filename="INV-000101.pdf"');
  const pdf = Buffer.from(await response.arrayBuffer());
  const read = inspectPdf(pdf);
  expect(read.pageCount).toBe(1);
  for (const line of json.json.lines as { description: string; amount: string }[]) {
    expect(read.text).toContain(line.description);
    expect(read.pages[0]).toContain(line.amount);
  }
  expect(read.text).toContain('Tier 2: above 10000: 15000 × 0.0002 = 3');
  expect(read.pages[0]).toContain('26.00 USD');
  expect(read.info.CreationDate).toBe('(D:20261101000003Z)');
  const poppler = pdftotext(pdf);
  if (poppler !== undefined) {
    expect(poppler).toContain('INV-000101');
    expect(poppler).toContain('Tokens <beta> & "friends"');
    expect(poppler).toContain('26.00 USD');
  }
});

test('a credit note renders too, naming the invoice it credits', async () => {
  const html = await api.http.call('GET', `/v1/invoices/${creditNoteId}/document.html`, undefined, keys.finance.headers);
  expect(html.status).toBe(200);
  expect(html.text).toContain('<h1>Credit note</h1>');
  expect(html.text).toContain('Credits invoice INV-000101.');
  expect(html.text).toContain('<td class="num total">4.00 USD</td>');
  const pdf = await fetch(`${api.http.baseUrl}/v1/invoices/${creditNoteId}/document.pdf`, { headers: keys.finance.headers });
  const read = inspectPdf(Buffer.from(await pdf.arrayBuffer()));
  expect(read.text).toContain('Credit note CN-000007');
  expect(read.text).toContain('Reason: Goodwill (outage)');
  expect(read.text).toContain('4.00 USD');
});

test('roles match GET /v1/invoices/:id: finance, app and admin read; usage tokens and monitoring are refused', async () => {
  for (const format of ['html', 'pdf']) {
    const path = `/v1/invoices/${invoice.id}/document.${format}`;
    for (const role of ['admin', 'finance', 'app'] as const) expect((await api.http.call('GET', path, undefined, keys[role].headers)).status).toBe(200);
    for (const role of ['monitoring', 'customer_usage'] as const) {
      const refused = await api.http.call('GET', path, undefined, keys[role].headers);
      expect([refused.status, refused.json.code, refused.type]).toEqual([403, 'forbidden', expect.stringContaining('application/problem+json')]);
    }
    expect((await api.http.call('GET', path)).status).toBe(401);
  }
});

test('an unknown or malformed id is a 404 problem, and a bad query a 422', async () => {
  for (const id of [randomUUID(), 'not-a-uuid']) {
    for (const format of ['html', 'pdf']) {
      const missing = await api.http.call('GET', `/v1/invoices/${id}/document.${format}`, undefined, keys.finance.headers);
      expect([missing.status, missing.json.code, missing.type]).toEqual([404, 'invoice_not_found', expect.stringContaining('application/problem+json')]);
    }
  }
  const bad = await api.http.call('GET', `/v1/invoices/${invoice.id}/document.pdf?download=yes`, undefined, keys.finance.headers);
  expect([bad.status, bad.json.code]).toEqual([422, 'validation_failed']);
  expect(api.temporalCalls).toEqual([]);
});
