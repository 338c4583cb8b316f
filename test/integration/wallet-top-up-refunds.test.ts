/**
 * Refunding a top-up invoice (a prepaid credit purchase, docs/wallets.md): the cash goes back only together with
 * the same amount of the credit it bought, still unspent. Against a real Postgres, the sandbox gateway and the
 * HTTP API; the purchase runs the wallet workflow's own steps (prepareTopUpInvoice, chargeInvoice, settleTopUp).
 */
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { formatMoney, sumMoney, toDecimal } from '../../domain/money';
import type { RefundRequest, RefundResult } from '../../payments/gateway';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { CustomerRow } from '../../store/customers';
import type { Database } from '../../store/database';
import { requestTopUp } from '../../store/wallet-topups';
import { applyWalletCredits, findWallet } from '../../store/wallets';
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

const activities = () => createActivities({ db, gateway: new SandboxGateway(db) });

/** A top-up charged through the sandbox; settled (the purchased grant written) unless `settle` is false. */
async function buyCredits(customer: CustomerRow, amount: string, settle = true): Promise<{ topUpId: string; invoiceId: string }> {
  const { prepareTopUpInvoice, chargeInvoice, settleTopUp } = activities();
  const { row } = await requestTopUp(db, { customerId: customer.id, currency: 'USD', kind: 'top_up', requestKey: randomUUID(), amount, requestedBy: 'test' });
  const topUpId = row.id;
  const { invoiceId } = await prepareTopUpInvoice({ topUpId });
  expect(await chargeInvoice({ invoiceId, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  if (settle) expect(await settleTopUp({ topUpId, at: new Date().toISOString() })).toMatchObject({ status: 'paid' });
  return { topUpId, invoiceId };
}

/** A period invoice's wallet draw (what invoicing does): what the wallet paid of `amount` of usage. */
async function spend(customer: CustomerRow, amount: string): Promise<string> {
  const applied = await db.transaction((trx) =>
    applyWalletCredits(trx, {
      customerId: customer.id,
      currency: 'USD',
      drawKey: `test:${randomUUID()}`,
      charges: [{ metricCode: null, amount }],
      during: { from: new Date(Date.now() - 3_600_000), to: new Date(Date.now() + 3_600_000) },
      description: 'usage',
    }),
  );
  return formatMoney(sumMoney(applied.map((credit) => toDecimal(credit.amount))), 'USD');
}

async function wallet(customer: CustomerRow) {
  const response = await api.http.call('GET', `/v1/customers/${customer.id}/wallet`);
  expect(response.status).toBe(200);
  return response.json;
}

async function grantOf(topUpId: string) {
  const topUp = await db('wallet_top_ups').where({ id: topUpId }).first();
  return db('wallet_grants').where({ id: topUp.grant_id }).first();
}

function refund(invoiceId: string, body: Json, key = randomUUID(), http = api.http) {
  return http.call('POST', `/v1/invoices/${invoiceId}/refunds`, body, { 'idempotency-key': key });
}

/** Row counts of everything a refund writes, and the wallets' balances: equal before and after means nothing was written. */
async function footprint(): Promise<Record<string, string>> {
  const tables = ['invoices', 'invoice_lines', 'refunds', 'audit_log', 'outbox', 'sandbox_gateway_refunds', 'wallet_ledger'];
  const counts = await Promise.all(tables.map(async (table) => [table, (await db(table).count<{ count: string }[]>('* as count'))[0].count] as const));
  const [{ balances }] = await db('wallets').select(db.raw("string_agg(id || '=' || balance, ',' ORDER BY id) AS balances"));
  const [{ remaining }] = await db('wallet_grants').select(db.raw("string_agg(id || '=' || remaining, ',' ORDER BY id) AS remaining"));
  return { ...Object.fromEntries(counts), balances, remaining };
}

test('refunding a whole top-up takes its credit back: the balance drops to zero and a later invoice draws nothing', async () => {
  const customer = await insertCustomer(db);
  const { topUpId, invoiceId } = await buyCredits(customer, '50.00');
  expect(await wallet(customer)).toMatchObject({ balance: '50.00', available: '50.00' });

  const refunded = await refund(invoiceId, { amount: '50.00', reason: 'customer changed their mind' });
  expect(refunded.status).toBe(201);
  expect(refunded.json).toMatchObject({ kind: 'credit_note', total: '50.00', credited_invoice_id: invoiceId, refund: { status: 'succeeded', amount: '50.00' } });

  expect(await wallet(customer)).toMatchObject({ balance: '0.00', available: '0.00', grants: [] });
  expect(String((await grantOf(topUpId)).remaining)).toBe('0.000000000000');
  const ledger = await db('wallet_ledger').where({ wallet_id: (await findWallet(db, customer.id, 'USD'))!.id }).orderBy('id');
  expect(ledger.map((entry) => [entry.kind, Number(entry.amount).toFixed(2), Number(entry.balance_after).toFixed(2)])).toEqual([
    ['grant', '50.00', '50.00'],
    ['refund', '-50.00', '0.00'],
  ]);
  expect(ledger[1].entry_key).toBe(`refund:${refunded.json.id}`);
  expect(await spend(customer, '10.00')).toBe('0.00');
});

test('a partial refund takes back part; a refund larger than what is left unspent is refused and writes nothing', async () => {
  const customer = await insertCustomer(db);
  const { topUpId, invoiceId } = await buyCredits(customer, '50.00');
  expect(await spend(customer, '30.00')).toBe('30.00'); // 20.00 of the purchase is left unspent
  // The listing says what a refund may take: the unspent 20.00, not the 50.00 paid.
  expect((await api.http.call('GET', `/v1/invoices/${invoiceId}/refunds`)).json).toMatchObject({ amount_paid: '50.00', amount_refundable: '20.00' });

  expect((await refund(invoiceId, { amount: '15.00', reason: 'part of it' })).status).toBe(201);
  expect(await wallet(customer)).toMatchObject({ balance: '5.00' });
  expect(String((await grantOf(topUpId)).remaining)).toBe('5.000000000000');

  const before = await footprint();
  const tooMuch = await refund(invoiceId, { amount: '5.01', reason: 'more than is unspent' });
  expect(tooMuch.status).toBe(422);
  expect(tooMuch.type).toContain('application/problem+json');
  expect(tooMuch.json).toMatchObject({ code: 'refund_exceeds_unspent_credit', status: 422 });
  expect(tooMuch.json.detail).toContain('5.00 USD');
  expect(await footprint()).toEqual(before);
  // More than was paid is still refused as before.
  expect((await refund(invoiceId, { amount: '35.01', reason: 'more than was paid' })).json.code).toBe('refund_exceeds_paid');
  expect(await footprint()).toEqual(before);

  expect((await refund(invoiceId, { amount: '5.00', reason: 'the unspent rest' })).status).toBe(201);
  expect(await wallet(customer)).toMatchObject({ balance: '0.00' });
  const summary = await api.http.call('GET', `/v1/invoices/${invoiceId}/refunds`);
  expect(summary.json).toMatchObject({ amount_paid: '50.00', amount_refunded: '20.00' });
});

test('the same refund retried with the same Idempotency-Key takes the credit back once', async () => {
  const customer = await insertCustomer(db);
  const { invoiceId } = await buyCredits(customer, '40.00');
  const key = randomUUID();
  const first = await refund(invoiceId, { amount: '10.00', reason: 'goodwill' }, key);
  const again = await refund(invoiceId, { amount: '10.00', reason: 'goodwill' }, key);
  expect(first.status).toBe(201);
  expect([200, 201]).toContain(again.status);
  expect(again.json.id).toBe(first.json.id);
  expect(await wallet(customer)).toMatchObject({ balance: '30.00' });
  expect(await db('wallet_ledger').where({ kind: 'refund', entry_key: `refund:${first.json.id}` })).toHaveLength(1);
});

test('a top-up whose grant is not written yet cannot be refunded; once granted, it can', async () => {
  const customer = await insertCustomer(db);
  const { topUpId, invoiceId } = await buyCredits(customer, '20.00', false); // paid, the grant not yet written
  const before = await footprint();
  const early = await refund(invoiceId, { amount: '20.00', reason: 'too early' });
  expect([early.status, early.json.code]).toEqual([422, 'refund_exceeds_unspent_credit']);
  expect(await footprint()).toEqual(before);

  await activities().settleTopUp({ topUpId, at: new Date().toISOString() });
  expect((await refund(invoiceId, { amount: '20.00', reason: 'now' })).status).toBe(201);
  expect(await wallet(customer)).toMatchObject({ balance: '0.00' });
});

test('a refund the gateway refuses gives the credit back: the customer keeps the credit, not the cash', async () => {
  const sandbox = new SandboxGateway(db);
  const refusing = {
    charge: sandbox.charge.bind(sandbox),
    findCharge: sandbox.findCharge.bind(sandbox),
    async refund(_request: RefundRequest): Promise<RefundResult> {
      return { outcome: 'failed', refundId: null, failureCode: 'refund_declined' };
    },
  };
  const refusingApi = await serveApiOnly(db, { headers: financeHeaders, gateway: refusing });
  try {
    const customer = await insertCustomer(db);
    const { topUpId, invoiceId } = await buyCredits(customer, '30.00');
    const refused = await refund(invoiceId, { amount: '12.00', reason: 'refused by the gateway' }, randomUUID(), refusingApi.http);
    expect(refused.json).toMatchObject({ status: 'void', refund: { status: 'failed', failure_code: 'refund_declined' } });
    expect(await wallet(customer)).toMatchObject({ balance: '30.00' });
    expect(String((await grantOf(topUpId)).remaining)).toBe('30.000000000000');
    // The void note no longer counts: the whole purchase is refundable again, and takes the whole credit.
    expect((await refund(invoiceId, { amount: '30.00', reason: 'all of it' })).status).toBe(201);
    expect(await wallet(customer)).toMatchObject({ balance: '0.00' });
  } finally {
    await refusingApi.close();
  }
});
