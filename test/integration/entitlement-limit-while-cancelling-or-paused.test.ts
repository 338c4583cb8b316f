/**
 * A hard feature limit holds for every call the subscription bills, and the answer grants the plan's features while
 * the service goes on (store/entitlements.ts `HOLDS_LIMITS_SQL`, `grantsFeaturesSql`), through the whole system (API,
 * workflow, time-skipping server, Postgres). Both read only active, trialing and past_due subscriptions before: asked
 * to cancel at the period's end, a customer was answered "no access" at once and billed every call past the limit
 * until the end; a retention offer's wait and a pause that bills usage did the same. Canceled now, the answer still
 * granted every feature through the grace window before the closing invoice. Paused past the end the row shows (no
 * period ends while paused), the calls counted in the next period's window: 3 before the end and 2 after, all billed.
 *
 *   P1M, limit 3 calls at 1.00, grace PT1H      5 calls in the period      before: 5 accepted, 5.00 billed, answer none
 *                                                                          now:    3 accepted, 3.00 billed, answer 3 of 3
 */
import { formatMoney, toDecimal } from '../../domain/money';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

/** A customer on its own limited plan (`settings` added to the plan's), subscribed from `start`. */
async function limitedCustomer(code: string, start: string, settings: Record<string, unknown> = {}) {
  expect((await stack.api.call('POST', '/v1/metrics', { code: `${code}_calls`, name: 'Calls', event_type: `${code}.call`, aggregation: 'count' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code,
    name: 'Limited',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    usage_grace_period: 'PT1H',
    charges: [{ metric_code: `${code}_calls`, price: { model: 'per_unit', unitPrice: '1.00' } }],
    features: [{ code: 'calls', kind: 'metered', metric_code: `${code}_calls`, limit: '3' }],
  });
  expect(plan.status).toBe(201);
  // Terms the plan API does not take: written before the subscription starts, which reads them.
  await stack.db('plans').where({ code }).update({ settings: stack.db.raw('settings || ?::jsonb', [JSON.stringify(settings)]) });
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: code, name: code, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: code, start_at: start });
  expect(subscription.status).toBe(201);
  const id: string = subscription.json.id;
  const send = async (prefix: string, count: number, timestamp: string) => {
    const calls = Array.from({ length: count }, (_, n) => ({ id: `${prefix}-${n}`, customer: code, type: `${code}.call`, timestamp, properties: {} }));
    const sent = await stack.api.call('POST', '/v1/events', { events: calls });
    return { accepted: sent.json.accepted ?? 0, refused: ((sent.json.errors ?? []) as { code: string }[]).map((error) => error.code) };
  };
  const answer = async () => {
    const one = (await stack.api.call('GET', `/v1/customers/${customer.json.id}/entitlements/calls`)).json;
    return { kind: one.kind, has_access: one.has_access, usage: one.usage };
  };
  const resetsAt = async () => (await stack.api.call('GET', `/v1/customers/${customer.json.id}/entitlements/calls`)).json.resets_at;
  const billed = async () => {
    const lines: { amount: string }[] = await stack.db('invoice_lines as l').join('invoices as i', 'i.id', 'l.invoice_id').where({ 'i.subscription_id': id, 'l.kind': 'usage' }).select('l.amount');
    return lines.map((line) => formatMoney(toDecimal(line.amount), 'USD'));
  };
  return { id, send, answer, resetsAt, billed };
}

test('canceled at the period end: the features stay until the end, the calls are held to the limit, late ones too', async () => {
  // 2033: Jan 1 start | Jan 5 cancel at period end (pending_cancellation) | Jan 10: 4 calls | Jan 31 23:00: 1 call
  // Feb 1 00:30 (grace): 1 call stamped Jan 31 | Feb 1 02:00 closing invoice: 3 calls = 3.00 (before: 6 calls, 6.00)
  const { id, send, answer, billed } = await limitedCustomer('pcl', '2033-01-01T00:00:00Z');
  await stack.skipTo('2033-01-05T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${id}/cancel`, { at: 'period_end', reason: 'leaving' })).json).toMatchObject({ status: 'pending_cancellation' });
  const cancelling = await answer();
  await stack.skipTo('2033-01-10T00:00:00Z');
  const january = await send('jan', 4, '2033-01-10T00:00:00Z');
  const atLimit = await answer();
  await stack.skipTo('2033-01-31T23:00:00Z');
  const lastDay = await send('last', 1, '2033-01-31T23:00:00Z');
  await stack.skipTo('2033-02-01T00:30:00Z');
  const late = await send('late', 1, '2033-01-31T23:30:00Z');
  const ended = await answer();
  await stack.skipTo('2033-02-01T02:00:00Z');
  expect({ cancelling, january, atLimit, lastDay, late, ended, billed: await billed() }).toEqual({
    cancelling: { kind: 'metered', has_access: true, usage: '0' },
    january: { accepted: 3, refused: ['entitlement_limit_reached'] },
    atLimit: { kind: 'metered', has_access: false, usage: '3' },
    lastDay: { accepted: 0, refused: ['entitlement_limit_reached'] },
    late: { accepted: 0, refused: ['entitlement_limit_reached'] },
    // The service ended at the period's end: no features.
    ended: { kind: null, has_access: false, usage: null },
    billed: ['3.00'],
  });
});

test('a retention offer waiting for its answer: the features stay and the calls are held to the limit', async () => {
  // 2034: Jan 1 start | Jan 5 asks to cancel -> retention_offered (answer within 7 days) | Jan 6: 5 calls
  const { id, send, answer } = await limitedCustomer('rol', '2034-01-01T00:00:00Z', { retentionOffer: { percentOff: '30', periods: 1, expiresAfter: 'P7D' } });
  await stack.skipTo('2034-01-05T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${id}/cancel`, { at: 'period_end', reason: 'too expensive' })).json).toMatchObject({ status: 'retention_offered' });
  await stack.skipTo('2034-01-06T00:00:00Z');
  const offered = await answer();
  const calls = await send('offered', 5, '2034-01-06T00:00:00Z');
  expect({ offered, calls, atLimit: await answer() }).toEqual({
    offered: { kind: 'metered', has_access: true, usage: '0' },
    calls: { accepted: 3, refused: ['entitlement_limit_reached', 'entitlement_limit_reached'] },
    atLimit: { kind: 'metered', has_access: false, usage: '3' },
  });
});

test('paused under the bill policy: the features stay, the calls sent while paused are held to the limit and billed', async () => {
  // 2035: Jan 1 start | Jan 10 paused until Jan 20 (usage billed) | Jan 12: 5 calls | resumed: the period ends Feb 11
  // its invoice: 3 calls = 3.00 (before: 5 calls, 5.00)
  const { id, send, answer, billed } = await limitedCustomer('pbl', '2035-01-01T00:00:00Z', { usageWhilePaused: 'bill' });
  await stack.skipTo('2035-01-10T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${id}/pause`, { until: '2035-01-20T00:00:00Z' }, { 'Idempotency-Key': 'pause-pbl' })).status).toBe(200);
  await stack.skipTo('2035-01-12T00:00:00Z');
  const paused = await answer();
  const calls = await send('paused', 5, '2035-01-12T00:00:00Z');
  const atLimit = await answer();
  await stack.skipTo('2035-02-12T02:00:00Z');
  expect({ paused, calls, atLimit, billed: await billed() }).toEqual({
    paused: { kind: 'metered', has_access: true, usage: '0' },
    calls: { accepted: 3, refused: ['entitlement_limit_reached', 'entitlement_limit_reached'] },
    atLimit: { kind: 'metered', has_access: false, usage: '3' },
    billed: ['3.00'],
  });
});

test('canceled now: the features end with the cancellation, the late calls of before it are still held to the limit', async () => {
  // 2036: Jan 1 start | Jan 10: 2 calls | Jan 10 12:00 canceled now; the closing invoice waits out the grace (PT1H)
  // Jan 10 12:30: the answer, then 2 calls stamped 11:00 (1 fits the limit) | 14:00 closing invoice: 3 calls = 3.00
  const { id, send, answer, billed } = await limitedCustomer('cnl', '2036-01-01T00:00:00Z');
  await stack.skipTo('2036-01-10T00:00:00Z');
  const before = await send('before', 2, '2036-01-10T00:00:00Z');
  await stack.skipTo('2036-01-10T12:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${id}/cancel`, { at: 'now', reason: 'leaving' })).json).toMatchObject({ status: 'canceled' });
  await stack.skipTo('2036-01-10T12:30:00Z');
  // Asked under the limit: only the end of the service can make it "no access".
  const ended = await answer();
  const late = await send('late', 2, '2036-01-10T11:00:00Z');
  await stack.skipTo('2036-01-10T14:00:00Z');
  expect({ before, late, ended, billed: await billed() }).toEqual({
    before: { accepted: 2, refused: [] },
    late: { accepted: 1, refused: ['entitlement_limit_reached'] },
    ended: { kind: null, has_access: false, usage: null },
    billed: ['3.00'],
  });
});

test('paused under the bill policy past the shown period end: the period goes on, and so does its limit', async () => {
  // 2036: Mar 1 start | Mar 20 paused until Apr 20 (usage billed) | Mar 25: 3 calls | Apr 5 (still paused, past the
  // Apr 1 end the row shows; no period ends while paused): 2 calls | resumed Apr 20: the period ends May 2
  // its invoice: 3 calls = 3.00
  const { id, send, answer, resetsAt, billed } = await limitedCustomer('pbe', '2036-03-01T00:00:00Z', { usageWhilePaused: 'bill' });
  await stack.skipTo('2036-03-20T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${id}/pause`, { until: '2036-04-20T00:00:00Z' }, { 'Idempotency-Key': 'pause-pbe' })).status).toBe(200);
  await stack.skipTo('2036-03-25T00:00:00Z');
  const march = await send('mar', 3, '2036-03-25T00:00:00Z');
  await stack.skipTo('2036-04-05T00:00:00Z');
  const april = await send('apr', 2, '2036-04-05T00:00:00Z');
  const atLimit = await answer();
  // The period's end is known only at the resume.
  const resets = await resetsAt();
  await stack.skipTo('2036-05-03T02:00:00Z');
  expect({ march, april, atLimit, resets, billed: await billed() }).toEqual({
    march: { accepted: 3, refused: [] },
    april: { accepted: 0, refused: ['entitlement_limit_reached', 'entitlement_limit_reached'] },
    atLimit: { kind: 'metered', has_access: false, usage: '3' },
    resets: null,
    billed: ['3.00'],
  });
});
