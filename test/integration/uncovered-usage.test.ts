/**
 * GET /v1/customers/:id/uncovered-usage: accepted usage that no subscription of the customer prices is listed with
 * why (docs/usage-events.md, "Uncovered usage"), so nothing accepted is silently lost: a customer without a
 * subscription, a type no plan of theirs meters, usage after every subscription's end, between one's end and the
 * next start. What a close or a re-rating will still bill (the open period) is not listed. Paged like the other
 * lists, readable by app and finance keys only. API, workflow, time-skipping server and a real Postgres.
 */
import { insertUsageEvents } from '../../store/usage';
import { createTestApiKey } from '../support/api-keys';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const event = (id: string, customer: string, type: string, timestamp: string) => ({ id, customer, type, timestamp, properties: { n: 1 } });
const customerNamed = async (externalId: string): Promise<string> =>
  (await stack.api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' })).json.id;
const uncovered = async (customerId: string, query = '') => stack.api.call('GET', `/v1/customers/${customerId}/uncovered-usage${query}`);
const reasons = async (customerId: string) => (await uncovered(customerId)).json.data.map((item: { id: string; reason: string }) => [item.id, item.reason]);

beforeAll(async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'uu_calls', name: 'Calls', event_type: 'uu.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/plans', { code: 'uu', name: 'UU', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', usage_grace_period: 'PT1H', charges: [{ metric_code: 'uu_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] })).status).toBe(201);
});

test('each event no subscription prices is listed with its reason; the open period is not', async () => {
  const [lone, main, moved] = [await customerNamed('lone'), await customerNamed('main'), await customerNamed('moved')];
  // 2035: Jan 1 main and moved subscribe | Jan 3 00:00 events; moved sends calls stamped 00:04 (within the clock
  // skew ingestion allows), then cancels now: they fall after its end | moved subscribes again from Jan 20.
  await stack.skipTo('2035-01-01T00:00:00Z');
  const mainSubscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: main, plan_code: 'uu', start_at: '2035-01-01T00:00:00Z' });
  expect(mainSubscription.json.uncovered_usage).toBeUndefined();
  const first = await stack.api.call('POST', '/v1/subscriptions', { customer_id: moved, plan_code: 'uu', start_at: '2035-01-01T00:00:00Z' });
  await stack.skipTo('2035-01-03T00:00:00Z');
  const sent = await stack.api.call('POST', '/v1/events', {
    events: [
      event('alone', 'lone', 'uu.calls', '2035-01-02T00:00:00Z'),
      event('priced', 'main', 'uu.calls', '2035-01-02T00:00:00Z'),
      event('other', 'main', 'uu.other', '2035-01-02T00:00:00Z'),
      event('ahead', 'moved', 'uu.calls', '2035-01-03T00:04:00Z'),
    ],
  });
  expect(sent.json).toMatchObject({ accepted: 4 });
  expect((await stack.api.call('POST', `/v1/subscriptions/${first.json.id}/cancel`, { at: 'now', reason: 'moving' })).status).toBe(200);

  expect(await reasons(lone)).toEqual([['alone', 'no_subscription']]);
  expect(await reasons(main)).toEqual([['other', 'event_type_not_priced']]);
  expect((await uncovered(main)).json.totals).toEqual([{ type: 'uu.other', events: 1, earliest: '2035-01-02T00:00:00.000Z', latest: '2035-01-02T00:00:00.000Z' }]);
  // The workflow records the end as it decides the cancellation.
  const afterEnd = await eventually(async () => {
    const found = await reasons(moved);
    return found.length ? found : undefined;
  }, 'the cancellation end recorded');
  expect(afterEnd).toEqual([['ahead', 'after_subscription_end']]);

  const second = await stack.api.call('POST', '/v1/subscriptions', { customer_id: moved, plan_code: 'uu', start_at: '2035-01-20T00:00:00Z' });
  expect(second.status).toBe(201);
  expect(second.json.uncovered_usage).toEqual({ events: 1, earliest: '2035-01-03T00:04:00.000Z' });
  expect(await reasons(moved)).toEqual([['ahead', 'between_subscriptions']]);
});

test('pages of at most `limit`, oldest first, with a cursor; a bad page size or cursor is 422, an unknown customer 404', async () => {
  const paged = await customerNamed('paged');
  const other = await customerNamed('other');
  await stack.skipTo('2035-02-01T00:00:00Z');
  const sent = await stack.api.call('POST', '/v1/events', {
    events: [event('c', 'paged', 'uu.calls', '2035-01-30T00:00:00Z'), event('a', 'paged', 'uu.calls', '2035-01-10T00:00:00Z'), event('b', 'paged', 'uu.x', '2035-01-20T00:00:00Z'), event('o', 'other', 'uu.calls', '2035-01-10T00:00:00Z')],
  });
  expect(sent.json).toMatchObject({ accepted: 4 });

  const page1 = await uncovered(paged, '?limit=2');
  expect([page1.json.data.map((item: { id: string }) => item.id), page1.json.has_more]).toEqual([['a', 'b'], true]);
  expect(page1.json.totals).toEqual([
    { type: 'uu.calls', events: 2, earliest: '2035-01-10T00:00:00.000Z', latest: '2035-01-30T00:00:00.000Z' },
    { type: 'uu.x', events: 1, earliest: '2035-01-20T00:00:00.000Z', latest: '2035-01-20T00:00:00.000Z' },
  ]);
  const page2 = await uncovered(paged, `?limit=2&starting_after=${page1.json.next_cursor}`);
  expect([page2.json.data.map((item: { id: string }) => item.id), page2.json.has_more]).toEqual([['c'], false]);
  expect((await uncovered(paged)).json.data).toHaveLength(3); // 100 by default

  const otherCursor = (await uncovered(other)).json.next_cursor;
  for (const query of ['?limit=0', '?limit=501', '?limit=abc', '?limit=1e1', '?limit=-1', '?starting_after=x', `?starting_after=${otherCursor}`, '?starting_after=99999999999999999999', '?unknown=1']) {
    const refused = await uncovered(paged, query);
    expect([query, refused.status, refused.json.code, refused.type]).toEqual([query, 422, 'validation_failed', expect.stringContaining('application/problem+json')]);
  }
  for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid']) {
    const missing = await uncovered(id);
    expect([missing.status, missing.json.code]).toEqual([404, 'customer_not_found']);
  }
});

test('with several subscriptions, an event of a type priced at other times only, or never, is listed as not priced', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'vv_calls', name: 'Calls', event_type: 'vv.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/plans', { code: 'vv', name: 'VV', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', usage_grace_period: 'PT1H', charges: [{ metric_code: 'vv_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] })).status).toBe(201);
  const pair = await customerNamed('pair');
  // 2035: Feb 2 on plan uu (uu.calls), and on plan vv (vv.calls) from Feb 20 | Feb 3 events: uu.calls (billed by its
  // period), ww.calls (no plan meters it), and vv.calls stamped Feb 2 stored directly, as ingestion did before it
  // refused usage of a type priced at other times only.
  await stack.skipTo('2035-02-02T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/subscriptions', { customer_id: pair, plan_code: 'uu', start_at: '2035-02-02T00:00:00Z' })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/subscriptions', { customer_id: pair, plan_code: 'vv', start_at: '2035-02-20T00:00:00Z' })).status).toBe(201);
  await stack.skipTo('2035-02-03T00:00:00Z');
  const sent = await stack.api.call('POST', '/v1/events', { events: [event('u', 'pair', 'uu.calls', '2035-02-02T12:00:00Z'), event('w', 'pair', 'ww.calls', '2035-02-02T13:00:00Z'), event('v', 'pair', 'vv.calls', '2035-02-02T11:00:00Z')] });
  expect(sent.json).toMatchObject({ accepted: 2, rejected: 1, errors: [{ index: 2, code: 'timestamp_before_subscription' }] });
  await insertUsageEvents(stack.db, [{ customerId: pair, eventId: 'v', eventType: 'vv.calls', occurredAt: new Date('2035-02-02T11:00:00Z'), properties: { n: 1 } }]);
  expect(await reasons(pair)).toEqual([
    ['v', 'event_type_not_priced'],
    ['w', 'event_type_not_priced'],
  ]);
});

test('app and finance keys read it; monitoring and a customer usage token are refused', async () => {
  const customer = await customerNamed('roles');
  const path = `/v1/customers/${customer}/uncovered-usage`;
  for (const [role, status] of [['app', 200], ['finance', 200], ['monitoring', 403], ['customer_usage', 403]] as const) {
    const key = await createTestApiKey(stack.db, role, role === 'customer_usage' ? { customerId: customer } : {});
    const answer = await stack.api.call('GET', path, undefined, key.headers);
    expect([role, answer.status, answer.status === 403 ? answer.json.code : 'ok']).toEqual([role, status, status === 403 ? 'forbidden' : 'ok']);
  }
});
