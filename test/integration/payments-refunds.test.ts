/**
 * Refunds of paid invoices over HTTP, against a real Postgres and the sandbox gateway's refund ledger:
 * a credit note (series CN) per refund, partial then full, never more than was paid, nothing written when refused.
 */
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { GatewayUnavailableError, RefundRequest, RefundResult } from '../../payments/gateway';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import type { CustomerRow } from '../../store/customers';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';
import type { Json } from '../support/http';

let db: Database;
let api: ApiOnly;
let financeHeaders: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  financeHeaders = (await createTestApiKey(db, 'finance')).headers;
  api = await serveApiOnly(db, { headers: financeHeaders });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

/** An invoice finalized and then paid through the real chargeInvoice activity and the sandbox gateway. */
async function paidInvoice(total = '29.00', customer?: CustomerRow): Promise<InvoiceRow> {
  const owner = customer ?? (await insertCustomer(db));
  const [invoice] = await db<InvoiceRow>('invoices')
    .insert({
      number: `INV-T${randomUUID().slice(0, 8)}`,
      customer_id: owner.id,
      kind: 'period',
      status: 'open',
      currency: 'USD',
      period_start: new Date('2030-03-01T00:00:00Z'),
      period_end: new Date('2030-04-01T00:00:00Z'),
      total,
      finalized_at: new Date(),
    })
    .returning('*');
  const { chargeInvoice } = createActivities({ db, gateway: new SandboxGateway(db) });
  expect(await chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  return (await db<InvoiceRow>('invoices').where({ id: invoice.id }).first())!;
}

function refund(invoiceId: string, body: Json, key = randomUUID()) {
  return api.http.call('POST', `/v1/invoices/${invoiceId}/refunds`, body, { 'idempotency-key': key });
}

async function gatewayRefundsOf(invoiceId: string): Promise<Array<{ amount: string; reason: string }>> {
  return db('sandbox_gateway_refunds as r')
    .join('sandbox_gateway_charges as c', 'c.id', 'r.charge_id')
    .where('c.reference', invoiceId)
    .orderBy('r.created_at')
    .select('r.amount', 'r.reason');
}

/** Row counts of everything a refund writes: equal before and after means nothing was written. */
async function footprint(): Promise<Record<string, string>> {
  const tables = ['invoices', 'invoice_lines', 'refunds', 'audit_log', 'outbox', 'sandbox_gateway_refunds'];
  const counts = await Promise.all(tables.map(async (table) => [table, (await db(table).count<{ count: string }[]>('* as count'))[0].count] as const));
  const series = await db('invoice_number_sequences').where({ series: 'CN' }).first();
  return { ...Object.fromEntries(counts), cn_last_number: series?.last_number ?? '0' };
}

test('a partial refund, then the rest: two credit notes, two gateway refunds, audited with the reason', async () => {
  const invoice = await paidInvoice('29.00');

  const partial = await refund(invoice.id, { amount: '10.00', reason: 'service outage on March 3' });
  expect(partial.status).toBe(201);
  expect(partial.json).toMatchObject({
    kind: 'credit_note',
    status: 'paid',
    total: '10.00',
    currency: 'USD',
    customer_id: invoice.customer_id,
    credited_invoice_id: invoice.id,
    reason: 'service outage on March 3',
    refund: { status: 'succeeded', amount: '10.00', currency: 'USD', failure_code: null },
  });
  expect(partial.json.number).toMatch(/^CN-\d{6}$/);
  expect(partial.json.refund.gateway_refund_id).toMatch(/^re_/);

  const rest = await refund(invoice.id, { amount: '19', reason: 'customer left; refund the remainder' });
  expect(rest.status).toBe(201);
  expect(rest.json).toMatchObject({ total: '19.00', status: 'paid', refund: { status: 'succeeded', amount: '19.00' } });
  // Gap-free CN series: consecutive numbers.
  expect(Number(rest.json.number.slice(3))).toBe(Number(partial.json.number.slice(3)) + 1);

  expect(await gatewayRefundsOf(invoice.id)).toEqual([
    { amount: '10.000000000000', reason: 'service outage on March 3' },
    { amount: '19.000000000000', reason: 'customer left; refund the remainder' },
  ]);
  const audit = await db('audit_log').where({ subject_id: invoice.id, action: 'invoice.refund_requested' }).orderBy('id');
  expect(audit.map((entry) => [entry.actor, entry.reason, entry.details.amount])).toEqual([
    ['api', 'service outage on March 3', '10.00'],
    ['api', 'customer left; refund the remainder', '19.00'],
  ]);
  const events = await db('outbox')
    .whereIn('event_type', ['credit_note.issued', 'refund.succeeded'])
    .whereIn('aggregate_id', [invoice.id, partial.json.id, rest.json.id]);
  expect(events.map((event) => event.event_type).sort()).toEqual(['credit_note.issued', 'credit_note.issued', 'refund.succeeded', 'refund.succeeded']);
  // The credited invoice itself is never edited.
  expect(await db<InvoiceRow>('invoices').where({ id: invoice.id }).first()).toMatchObject({ status: 'paid', total: '29.000000000000' });

  const summary = await api.http.call('GET', `/v1/invoices/${invoice.id}/refunds`);
  expect(summary.status).toBe(200);
  expect(summary.json).toMatchObject({ amount_paid: '29.00', amount_refunded: '29.00', amount_refundable: '0.00' });
  expect(summary.json.data).toHaveLength(2);
});

test('a refund beyond what was paid minus earlier refunds is rejected with refund_exceeds_paid, and nothing is written', async () => {
  const invoice = await paidInvoice('29.00');
  expect((await refund(invoice.id, { amount: '20.00', reason: 'first' })).status).toBe(201);

  const before = await footprint();
  const tooMuch = await refund(invoice.id, { amount: '9.01', reason: 'one cent too many' });
  expect(tooMuch.status).toBe(422);
  expect(tooMuch.type).toContain('application/problem+json');
  expect(tooMuch.json).toMatchObject({ code: 'refund_exceeds_paid', status: 422 });
  expect(tooMuch.json.detail).toContain('refundable 9.00 USD');
  expect(await footprint()).toEqual(before);
  expect(await gatewayRefundsOf(invoice.id)).toHaveLength(1);

  // Exactly the rest is fine.
  expect((await refund(invoice.id, { amount: '9.00', reason: 'the rest' })).status).toBe(201);
  const after = await footprint();
  expect((await refund(invoice.id, { amount: '0.01', reason: 'nothing left' })).json.code).toBe('refund_exceeds_paid');
  expect(await footprint()).toEqual(after);
});

test('concurrent refunds that together exceed the payment: one wins, the other is refused', async () => {
  const invoice = await paidInvoice('29.00');
  const results = await Promise.all([refund(invoice.id, { amount: '20.00', reason: 'a' }), refund(invoice.id, { amount: '20.00', reason: 'b' })]);
  expect(results.map((result) => result.status).sort()).toEqual([201, 422]);
  expect(await gatewayRefundsOf(invoice.id)).toHaveLength(1);
});

test('the same Idempotency-Key returns the same credit note; the gateway refunds once', async () => {
  const invoice = await paidInvoice('50.00');
  const key = randomUUID();
  const first = await refund(invoice.id, { amount: '5.00', reason: 'goodwill' }, key);
  const again = await refund(invoice.id, { amount: '5.00', reason: 'goodwill' }, key);
  expect(first.status).toBe(201);
  expect([200, 201]).toContain(again.status);
  expect(again.json.id).toBe(first.json.id);
  expect(await gatewayRefundsOf(invoice.id)).toHaveLength(1);
});

test('invalid requests are rejected before anything is written', async () => {
  const invoice = await paidInvoice('10.00');
  const before = await footprint();
  const cases: Array<[Json, number, string]> = [
    [{ amount: '1.001', reason: 'too precise' }, 422, 'validation_failed'],
    [{ amount: '0', reason: 'nothing' }, 422, 'validation_failed'],
    [{ amount: '-1.00', reason: 'negative' }, 422, 'validation_failed'],
    [{ amount: 1, reason: 'a JSON number' }, 422, 'validation_failed'],
    [{ amount: '1.00' }, 422, 'validation_failed'],
    [{ amount: '1.00', reason: '   ' }, 422, 'validation_failed'],
    [{ amount: '1.00', reason: 'x', extra: true }, 422, 'validation_failed'],
  ];
  for (const [body, status, code] of cases) {
    const response = await refund(invoice.id, body);
    expect([JSON.stringify(body), response.status, response.json?.code]).toEqual([JSON.stringify(body), status, code]);
  }
  expect((await refund(randomUUID(), { amount: '1.00', reason: 'no such invoice' })).json.code).toBe('invoice_not_found');

  const [open] = await db<InvoiceRow>('invoices')
    .insert({ number: `INV-O${randomUUID().slice(0, 8)}`, customer_id: invoice.customer_id, kind: 'period', status: 'open', currency: 'USD', period_start: new Date(), period_end: new Date(), total: '10' })
    .returning('*');
  const unpaid = await refund(open.id, { amount: '1.00', reason: 'not paid yet' });
  expect([unpaid.status, unpaid.json.code]).toEqual([409, 'invoice_not_paid']);
  await db('invoices').where({ id: open.id }).delete();
  expect(await footprint()).toEqual(before);
});

test('when the gateway does not answer, the refund stays pending (202); repeating the request completes it once', async () => {
  const sandbox = new SandboxGateway(db);
  let outages = 1;
  const flaky = {
    charge: sandbox.charge.bind(sandbox),
    findCharge: sandbox.findCharge.bind(sandbox),
    async refund(request: RefundRequest): Promise<RefundResult> {
      if (outages-- > 0) throw new GatewayUnavailableError('sandbox: connection reset');
      return sandbox.refund(request);
    },
  };
  const flakyApi = await serveApiOnly(db, { headers: financeHeaders, gateway: flaky });
  try {
    const invoice = await paidInvoice('12.00');
    const key = randomUUID();
    const call = () => flakyApi.http.call('POST', `/v1/invoices/${invoice.id}/refunds`, { amount: '12.00', reason: 'duplicate charge' }, { 'idempotency-key': key });

    const pending = await call();
    expect(pending.status).toBe(202);
    expect(pending.json).toMatchObject({ status: 'open', refund: { status: 'pending' } });
    expect(await gatewayRefundsOf(invoice.id)).toHaveLength(0);

    const completed = await call();
    expect([200, 201]).toContain(completed.status);
    expect(completed.json).toMatchObject({ id: pending.json.id, status: 'paid', refund: { status: 'succeeded' } });
    expect(await gatewayRefundsOf(invoice.id)).toHaveLength(1);
  } finally {
    await flakyApi.close();
  }
});
