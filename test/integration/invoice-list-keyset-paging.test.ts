/**
 * GET /v1/invoices and GET /v1/subscriptions/:id/invoices list newest first, cut at `limit` (at most 200). Before,
 * there was no cursor: past the newest 200 of a filter (the whole book, unfiltered) finance could not reach an
 * invoice. Keyset paging: `starting_after` = the previous page's `next_cursor`, `has_more` says whether to go on.
 *
 *   book    | 230 invoices of one subscription, one a day from 2030-01-01 | 6 adjustments sharing one period and one
 *           | created_at (ties broken by id) | another customer's 5 | walk by 50 (and by 4), issuing between pages
 */
import { randomUUID } from 'node:crypto';
import type { Database } from '../../store/database';
import type { CustomerRow } from '../../store/customers';
import type { SubscriptionRow } from '../../store/subscriptions';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let numberSequence = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'finance')).headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const DAY = 86_400_000;

async function subscriptionOf(customer: CustomerRow): Promise<SubscriptionRow> {
  const plan = await insertPlan(db, { code: `paging-${randomUUID().slice(0, 8)}`, billing_interval: 'P1D', flat_fee: '1.00' });
  return (await insertSubscription(db, customer, plan, new Date('2030-01-01T00:00:00Z'))).row;
}

/** Invoices of `subscription`, one per day from `fromDay` (days after 2030-01-01), in one insert or one per row. */
async function issue(subscription: SubscriptionRow, fromDay: number, count: number, extra: Record<string, unknown> = {}, oneInsert = true): Promise<string[]> {
  const rows = Array.from({ length: count }, (_, index) => {
    numberSequence += 1;
    const start = new Date(Date.UTC(2030, 0, 1) + (fromDay + index) * DAY);
    return {
      customer_id: subscription.customer_id,
      subscription_id: subscription.id,
      kind: 'period',
      status: 'paid',
      currency: 'USD',
      number: `INV-PAGE-${numberSequence}`,
      period_start: start,
      period_end: new Date(start.getTime() + DAY),
      total: '1',
      ...extra,
    };
  });
  if (oneInsert) return (await db('invoices').insert(rows).returning('id')).map((row: { id: string }) => row.id);
  const ids: string[] = [];
  for (const row of rows) ids.push(...(await db('invoices').insert(row).returning('id')).map((r: { id: string }) => r.id));
  return ids;
}

/** Every page of `route` by `limit`, calling `between` after each page but the last. */
async function walk(route: string, limit: number, between: (page: number) => Promise<void> = async () => {}): Promise<{ ids: string[]; pages: string[][] }> {
  const pages: string[][] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 100; page += 1) {
    const separator = route.includes('?') ? '&' : '?';
    const answer = await api.http.call('GET', `${route}${separator}limit=${limit}${cursor ? `&starting_after=${cursor}` : ''}`);
    expect([answer.status, answer.json.code]).toEqual([200, undefined]);
    const ids = answer.json.data.map((invoice: { id: string }) => invoice.id);
    pages.push(ids);
    expect(ids.length).toBeLessThanOrEqual(limit);
    if (!answer.json.has_more) break;
    expect(ids).toHaveLength(limit);
    cursor = answer.json.next_cursor;
    await between(page);
  }
  return { ids: pages.flat(), pages };
}

test('paging through 236 invoices by 50 yields each exactly once, newest first, also when invoices are issued between pages', async () => {
  const customer = await insertCustomer(db);
  const subscription = await subscriptionOf(customer);
  const book = await issue(subscription, 0, 230);
  // Six adjustments of one period, written in one statement: same period_start, same created_at; only id orders them.
  const ties = await issue(subscription, 0, 6, { kind: 'adjustment', period_start: new Date('2030-04-11T00:00:00Z'), period_end: new Date('2030-04-12T00:00:00Z') });
  const other = await subscriptionOf(await insertCustomer(db));
  await issue(other, 0, 5);

  const route = `/v1/invoices?subscription_id=${subscription.id}`;
  const first = await api.http.call('GET', `${route}&limit=200`);
  expect([first.json.data.length, first.json.has_more]).toEqual([200, true]);

  // Between pages, the next days' invoices are finalized: they belong on a fresh first page, not in this walk.
  let nextDay = 230;
  const issuedDuring: string[] = [];
  const { ids, pages } = await walk(route, 50, async () => {
    issuedDuring.push(...(await issue(subscription, nextDay, 2, {}, false)));
    nextDay += 2;
  });
  expect(pages.map((page) => page.length)).toEqual([50, 50, 50, 50, 36]);
  expect(ids).toHaveLength(236);
  expect(new Set(ids).size).toBe(236);
  expect(new Set(ids)).toEqual(new Set([...book, ...ties]));
  expect(ids.filter((id) => issuedDuring.includes(id))).toEqual([]);

  // Newest first: the same order as one unpaged read of the whole list.
  const ordered: { id: string }[] = await db('invoices')
    .where({ subscription_id: subscription.id })
    .whereNotIn('id', issuedDuring)
    .orderBy([{ column: 'period_start', order: 'desc' }, { column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }])
    .select('id');
  expect(ids).toEqual(ordered.map((row) => row.id));

  // A fresh walk starts with what was issued meanwhile, newest first.
  const fresh = await walk(route, 50);
  expect(fresh.ids).toHaveLength(236 + issuedDuring.length);
  expect(fresh.ids.slice(0, issuedDuring.length)).toEqual([...issuedDuring].reverse());
});

test('filters (customer_id, subscription_id, status) combine with the cursor', async () => {
  const customer = await insertCustomer(db);
  const [a, b] = [await subscriptionOf(customer), await subscriptionOf(customer)];
  const paidA = await issue(a, 0, 9);
  const openA = await issue(a, 0, 7, { kind: 'proration', status: 'open' });
  const paidB = await issue(b, 0, 6);
  await issue(await subscriptionOf(await insertCustomer(db)), 0, 4);

  const sorted = (ids: string[]) => [...ids].sort();
  expect(sorted((await walk(`/v1/invoices?customer_id=${customer.id}`, 4)).ids)).toEqual(sorted([...paidA, ...openA, ...paidB]));
  expect(sorted((await walk(`/v1/invoices?customer_id=${customer.id}&status=paid`, 4)).ids)).toEqual(sorted([...paidA, ...paidB]));
  expect(sorted((await walk(`/v1/invoices?subscription_id=${a.id}&status=open`, 3)).ids)).toEqual(sorted(openA));
  expect(sorted((await walk(`/v1/invoices?customer_id=${customer.id}&subscription_id=${b.id}`, 5)).ids)).toEqual(sorted(paidB));

  // An invoice that changes status after it ended a page still carries the walk on (its position is its sort key).
  const page = await api.http.call('GET', `/v1/invoices?subscription_id=${a.id}&status=open&limit=3`);
  await db('invoices').where({ id: page.json.data[2].id }).update({ status: 'paid' });
  const rest = await api.http.call('GET', `/v1/invoices?subscription_id=${a.id}&status=open&limit=10&starting_after=${page.json.next_cursor}`);
  expect([rest.status, rest.json.data.length, rest.json.has_more]).toEqual([200, 4, false]);
});

test("a malformed cursor, or one from another customer's or subscription's list, is 422 validation_failed and nothing is read past it", async () => {
  const customer = await insertCustomer(db);
  const mine = await subscriptionOf(customer);
  await issue(mine, 0, 3);
  const theirs = await subscriptionOf(await insertCustomer(db));
  await issue(theirs, 0, 3);
  const theirCursor = (await api.http.call('GET', `/v1/invoices?subscription_id=${theirs.id}&limit=1`)).json.next_cursor;
  const unknown = Buffer.from(JSON.stringify({ v: 1, id: randomUUID() })).toString('base64url');

  for (const route of [
    `/v1/invoices?customer_id=${customer.id}&starting_after=${theirCursor}`,
    `/v1/invoices?subscription_id=${mine.id}&starting_after=${theirCursor}`,
    `/v1/subscriptions/${mine.id}/invoices?starting_after=${theirCursor}`,
    `/v1/invoices?starting_after=${unknown}`,
    `/v1/invoices?starting_after=not-a-cursor`,
    `/v1/invoices?starting_after=${encodeURIComponent('{"id":1}')}`,
    `/v1/invoices?starting_after=${Buffer.from('{"v":1,"id":"nope"}').toString('base64url')}`,
    `/v1/subscriptions/${mine.id}/invoices?starting_after=%00`,
    `/v1/invoices?starting_after=a&starting_after=b`,
  ]) {
    const refused = await api.http.call('GET', route);
    expect([route, refused.status, refused.json.code, refused.type]).toEqual([route, 422, 'validation_failed', expect.stringContaining('application/problem+json')]);
  }
});

test('GET /v1/subscriptions/:id/invoices pages its invoices and credit notes, each once, newest first', async () => {
  const customer = await insertCustomer(db);
  const subscription = await subscriptionOf(customer);
  const issued = await issue(subscription, 0, 11, {}, false);
  await issue(subscription, 20, 2, { status: 'draft', kind: 'closing' });
  const [note] = await db('invoices')
    .insert({
      customer_id: customer.id,
      subscription_id: null,
      kind: 'credit_note',
      status: 'paid',
      currency: 'USD',
      number: `CN-PAGE-${randomUUID().slice(0, 8)}`,
      period_start: new Date('2030-01-01T00:00:00Z'),
      period_end: new Date('2030-01-02T00:00:00Z'),
      total: '1',
      credited_invoice_id: issued[0],
      idempotency_key: randomUUID(),
      reason: 'paging',
    })
    .returning('id');

  const issuedDuring: string[] = [];
  const { ids, pages } = await walk(`/v1/subscriptions/${subscription.id}/invoices`, 5, async () => {
    issuedDuring.push(...(await issue(subscription, 40 + issuedDuring.length, 1)));
  });
  expect(pages.map((page) => page.length)).toEqual([5, 5, 2]);
  expect(ids).toEqual([note.id, ...[...issued].reverse()]);
  const fresh = await walk(`/v1/subscriptions/${subscription.id}/invoices`, 5);
  expect(fresh.ids).toEqual([...[...issuedDuring].reverse(), note.id, ...[...issued].reverse()]);
});
