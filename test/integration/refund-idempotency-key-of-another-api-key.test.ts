/**
 * Idempotency-Keys are scoped per API key (api/idempotency.ts), and so must be every identity derived from one. The
 * refund route stored the header as it came as the credit note's key, unique per invoice: a second finance
 * integration (its own API key) refunding the same invoice under the same key value (a deterministic key such as
 * `refund-<order>`) was answered 200 with the other integration's credit note and no refund of its own was made, or
 * 409 idempotency_key_reused for a key it had never used.
 */
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let finance: TestApiKey;
let otherFinance: TestApiKey;

beforeAll(async () => {
  db = await createTestDatabase();
  finance = await createTestApiKey(db, 'finance');
  otherFinance = await createTestApiKey(db, 'finance');
  api = await serveApiOnly(db, { headers: finance.headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

async function paidInvoice(total: string): Promise<InvoiceRow> {
  const owner = await insertCustomer(db);
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

const refunded = async (invoiceId: string): Promise<string[]> =>
  (await db('refunds').where({ invoice_id: invoiceId, status: 'succeeded' }).orderBy('created_at').select('amount')).map((row: { amount: string }) => String(row.amount));

test('another API key refunding the same invoice under the same key value gets its own refund', async () => {
  const invoice = await paidInvoice('30.00');
  const key = `refund-${invoice.id}`;
  const mine = await api.http.call('POST', `/v1/invoices/${invoice.id}/refunds`, { amount: '10.00', reason: 'first integration' }, { 'idempotency-key': key });
  expect(mine.status).toBe(201);
  const theirs = await api.http.call('POST', `/v1/invoices/${invoice.id}/refunds`, { amount: '10.00', reason: 'second integration' }, { 'idempotency-key': key, ...otherFinance.headers });
  expect([theirs.status, theirs.json.id === mine.json.id]).toEqual([201, false]);
  const otherAmount = await api.http.call('POST', `/v1/invoices/${invoice.id}/refunds`, { amount: '5.00', reason: 'second integration' }, { 'idempotency-key': `${key}-b`, ...otherFinance.headers });
  expect(otherAmount.status).toBe(201);
  const reused = await api.http.call('POST', `/v1/invoices/${invoice.id}/refunds`, { amount: '5.00', reason: 'first integration' }, { 'idempotency-key': `${key}-b` });
  expect([reused.status, reused.json.code]).toEqual([201, undefined]);
  expect((await refunded(invoice.id)).map(Number)).toEqual([10, 10, 5, 5]);
  // A repeat of each one's request is still its own replay, refunding nothing more.
  const again = await api.http.call('POST', `/v1/invoices/${invoice.id}/refunds`, { amount: '10.00', reason: 'second integration' }, { 'idempotency-key': key, ...otherFinance.headers });
  expect([again.status, again.json.id]).toEqual([201, theirs.json.id]);
  expect(await refunded(invoice.id)).toHaveLength(4);
});

test('a header equal to an internal credit note key is no replay of that credit note', async () => {
  const invoice = await paidInvoice('30.00');
  const internal = `rerate:${randomUUID()}`;
  const first = await api.http.call('POST', `/v1/invoices/${invoice.id}/refunds`, { amount: '3.00', reason: 'pre-existing' }, { 'idempotency-key': randomUUID() });
  expect(first.status).toBe(201);
  await db('invoices').where({ id: first.json.id }).update({ idempotency_key: internal }); // as a re-rating's credit note is keyed
  const answer = await api.http.call('POST', `/v1/invoices/${invoice.id}/refunds`, { amount: '3.00', reason: 'mine' }, { 'idempotency-key': internal });
  expect([answer.status, answer.json.id === first.json.id]).toEqual([201, false]);
});

test('a credit note issued before keys were scoped (its key as sent) is still found by a retry of its request', async () => {
  const invoice = await paidInvoice('30.00');
  const key = randomUUID();
  const first = await api.http.call('POST', `/v1/invoices/${invoice.id}/refunds`, { amount: '7.00', reason: 'before the upgrade' }, { 'idempotency-key': key });
  await db('invoices').where({ id: first.json.id }).update({ idempotency_key: key });
  await db('idempotency_keys').where({ key }).delete(); // its stored answer gone (expired, or the refund was pending)
  const retried = await api.http.call('POST', `/v1/invoices/${invoice.id}/refunds`, { amount: '7.00', reason: 'before the upgrade' }, { 'idempotency-key': key });
  expect([retried.status, retried.json.id]).toEqual([200, first.json.id]);
  expect(await refunded(invoice.id)).toHaveLength(1);
});

test('once its stored answer expired, the same key for another amount is refused in the words of the key as sent', async () => {
  const invoice = await paidInvoice('30.00');
  const key = randomUUID();
  expect((await api.http.call('POST', `/v1/invoices/${invoice.id}/refunds`, { amount: '4.00', reason: 'first' }, { 'idempotency-key': key })).status).toBe(201);
  await db('idempotency_keys').where({ key }).delete(); // expired and swept
  const other = await api.http.call('POST', `/v1/invoices/${invoice.id}/refunds`, { amount: '6.00', reason: 'first' }, { 'idempotency-key': key });
  expect([other.status, other.json.code, other.json.detail]).toEqual([409, 'idempotency_key_reused', `Idempotency-Key ${key} already named a refund of another amount; use a new key`]);
  expect(await refunded(invoice.id)).toHaveLength(1);
});
