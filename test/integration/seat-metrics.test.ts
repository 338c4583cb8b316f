/**
 * Seat-like metrics prorated within the period (issue 14 point 6), end to end: metric creation, ingestion of
 * signed deltas and levels, the usage preview, two period closes through the subscription workflow on a
 * time-skipping Temporal server, a late seat change carried into the next period, and a re-rating that bills it.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { cancelSubscriptionUpdate } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';
import { settledRerate } from '../support/rerate';

const stack = useApiStack();

const seat = (id: string, timestamp: string, delta: number) => ({ id, customer: 'team', type: 'seat.changed', timestamp, properties: { delta } });
const editors = (id: string, timestamp: string, count: number) => ({ id, customer: 'team', type: 'editors.set', timestamp, properties: { count } });
type UsageRow = { metric_code: string; quantity: string; opening_level?: string };
type Line = { description: string; amount: string };

test('seat metrics: creation rules, and what ingestion accepts', async () => {
  expect(await stack.api.call('POST', '/v1/metrics', { code: 'grouped_seats', name: 'Seats', event_type: 'grouped.seat', aggregation: 'prorated_sum', property: 'delta', group_by: ['team'] })).toMatchObject({
    status: 422,
    json: { code: 'prorated_metric_not_groupable' },
  });
  expect(await stack.api.call('POST', '/v1/metrics', { code: 'no_property', name: 'Seats', event_type: 'x.seat', aggregation: 'prorated_latest' })).toMatchObject({
    status: 422,
    json: { code: 'validation_failed' },
  });
  expect(await stack.api.call('POST', '/v1/metrics', { code: 'neg_latest', name: 'Seats', event_type: 'y.seat', aggregation: 'prorated_latest', property: 'n', allow_negative: true })).toMatchObject({
    status: 422,
    json: { code: 'validation_failed' },
  });
  expect(await stack.db('billable_metrics').whereIn('code', ['grouped_seats', 'no_property', 'neg_latest']).count<{ count: string }[]>('* as count')).toEqual([{ count: '0' }]);
});

test('two periods: a seat added mid-period bills its share, a removed one until removal, the level carries into the next period', async () => {
  const seats = await stack.api.call('POST', '/v1/metrics', { code: 'seats', name: 'Seats', event_type: 'seat.changed', aggregation: 'prorated_sum', property: 'delta' });
  expect(seats).toMatchObject({ status: 201, json: { aggregation: 'prorated_sum', allow_negative: true } }); // deltas may be -1
  const editorLevel = await stack.api.call('POST', '/v1/metrics', { code: 'editors', name: 'Editors', event_type: 'editors.set', aggregation: 'prorated_latest', property: 'count' });
  expect(editorLevel).toMatchObject({ status: 201, json: { aggregation: 'prorated_latest', allow_negative: false } });
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'team',
    name: 'Team',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0.00',
    usage_grace_period: 'PT1H',
    charges: [
      { metric_code: 'seats', display_name: 'Seats', price: { model: 'per_unit', unitPrice: '10.00' } },
      { metric_code: 'editors', display_name: 'Editors', price: { model: 'per_unit', unitPrice: '3.00' } },
    ],
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'team', name: 'Team', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'team', start_at: '2031-04-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  const handle = stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`);

  // Timeline (UTC, 2031), seats at 10.00, editors at 3.00:
  //   P0 April (30 days)
  //     Apr 1   +2 seats (A, C)            A: 30/30 = 10.00; C until Apr 25: 24/30 -> 8.00
  //     Apr 11  editors level 3            3 × 20/30 = 2 editors -> 6.00
  //     Apr 16  +1 seat (B, day 16)        15/30 = half -> 5.00
  //     Apr 25  -1 seat (C removed)
  //     seats Σ level × days = 2×15 + 3×9 + 2×6 = 69 -> 69/30 = 2.3 -> 23.00; closing level 2
  //   May 1 01:00  INV 23.00 + 6.00 = 29.00
  //   May 2   late: +1 seat stamped Apr 28 (not in the May invoice; its level reaches May)
  //   P1 May (31 days): opening level 2 + 1 late = 3 seats all month -> 30.00
  //     May 16  editors level 1            (3×15 + 1×16)/31 = 61/31 = 1.967741935484 -> 5.903225806452 -> 5.90
  //   May 3   re-rating April with late usage: seats (69 + 3)/30 = 2.4 -> 24.00, +1.00 adjustment
  //   Jun 1 01:00  closing INV (canceled at period end) 30.00 + 5.90 = 35.90
  await stack.skipTo('2031-04-20T00:00:00Z');
  const april = await stack.api.call('POST', '/v1/events', { events: [seat('s1', '2031-04-01T00:00:00Z', 2), editors('e1', '2031-04-11T00:00:00Z', 3), seat('s2', '2031-04-16T00:00:00Z', 1)] });
  expect(april.json).toMatchObject({ accepted: 3, rejected: 0 });
  // A level below 0 is not a level: prorated_latest refuses negative values at ingestion.
  expect((await stack.api.call('POST', '/v1/events', { events: [editors('bad', '2031-04-12T00:00:00Z', -1)] })).json).toMatchObject({ errors: [{ code: 'negative_value' }] });

  // The preview prorates over the whole period with today's level held to its end: 2×15 + 3×15 = 75/30 = 2.5.
  const preview = await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
  expect(preview.json.usage.map((row: UsageRow) => [row.metric_code, row.quantity, row.opening_level])).toEqual([
    ['seats', '2.5', '0'],
    ['editors', '2', '0'],
  ]);
  expect(preview.json.projected.lines.map((line: Line) => [line.description, line.amount])).toEqual([
    ['Seats', '25.00'],
    ['Editors', '6.00'],
  ]);

  await stack.skipTo('2031-04-26T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { events: [seat('s3', '2031-04-25T00:00:00Z', -1)] })).json).toMatchObject({ accepted: 1 });
  // The daily chart (running totals) shows each day's net seats added (a removal day: 0) and the highest level set.
  const daily = await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage/daily`);
  type Day = { date: string; quantity: string; event_count: number };
  expect(daily.json.metrics.map((metric: { metric_code: string; days: Day[] }) => [metric.metric_code, metric.days.filter((day) => day.event_count > 0).map((day) => [day.date, day.quantity])])).toEqual([
    ['seats', [['2031-04-01', '2'], ['2031-04-16', '1'], ['2031-04-25', '0']]],
    ['editors', [['2031-04-11', '3']]],
  ]);
  await stack.skipTo('2031-05-02T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { events: [seat('late', '2031-04-28T00:00:00Z', 1)] })).json).toMatchObject({ accepted: 1 });

  const [mayInvoice] = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2031-05-01T00:00:00Z');
  expect(mayInvoice.total).toBe('29.000000000000');
  const aprilLines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: mayInvoice.id, kind: 'usage' }).orderBy('position');
  expect(aprilLines.map((line) => [line.metric_code, line.quantity, line.amount])).toEqual([
    ['seats', '2.300000000000', '23.000000000000'],
    ['editors', '2.000000000000', '6.000000000000'],
  ]);
  const aprilClose = await stack.db('usage_period_closures').where({ subscription_id: subscriptionId, period_start: '2031-04-01T00:00:00Z' }).first();
  expect(aprilClose.totals.seats).toMatchObject({ quantity: '2.3', openingLevel: '0', closingLevel: { level: '2', setAt: '2031-04-25T00:00:00.000Z' } });

  // Re-rating April with the late seat: +1 seat for Apr 28..May 1 = 3/30 = 0.1 seat -> 1.00 more.
  await stack.skipTo('2031-05-03T00:00:00Z');
  const rerate = await stack.api.call('POST', `/v1/invoices/${mayInvoice.id}/rerate`, { reason: 'late seat', include_late_usage: true });
  expect(rerate.status).toBe(202);
  expect(await settledRerate(stack.env.connection, rerate.json.id, (state) => state.status === 'proposed')).toMatchObject({ outcome: 'adjustment', total: '1.00' });
  await stack.api.call('POST', `/v1/rerates/${rerate.json.id}/approve`, { reason: 'checked' });
  const done = await settledRerate(stack.env.connection, rerate.json.id, (state) => state.status === 'finalized');
  expect((await stack.db<InvoiceRow>('invoices').where({ id: done.resultInvoiceId! }).first())!.total).toBe('1.000000000000');
  // The claimed late seat now lives in April's carried level, so May still opens at 3.
  expect((await stack.db('usage_period_closures').where({ id: aprilClose.id }).first()).totals.seats.closingLevel).toEqual({ level: '3', setAt: '2031-04-28T00:00:00.000Z', claimed: { level: '3', setAt: '2031-04-28T00:00:00.000Z' } });

  await stack.skipTo('2031-05-20T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { events: [editors('e2', '2031-05-16T00:00:00Z', 1)] })).json).toMatchObject({ accepted: 1 });
  const mayPreview = await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
  expect(mayPreview.json.usage.map((row: UsageRow) => [row.metric_code, row.quantity, row.opening_level])).toEqual([
    ['seats', '3', '3'],
    ['editors', '1.967741935484', '3'],
  ]);
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'test', requestedBy: 'test' }] });
  await handle.result();

  const closing = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'closing' }).first();
  expect(closing!.total).toBe('35.900000000000');
  const mayLines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: closing!.id, kind: 'usage' }).orderBy('position');
  expect(mayLines.map((line) => [line.metric_code, line.quantity, line.amount])).toEqual([
    ['seats', '3.000000000000', '30.000000000000'],
    ['editors', '1.967741935484', '5.900000000000'],
  ]);
});
