/**
 * Usage events name a customer, not a subscription: a usage close claims every unclaimed event of its plan's metrics
 * in its period, for the customer (store/usage.ts closeUsage), so with two live subscriptions metering one event
 * type, the first of their closes bills it. A seat level is not an event but a level over time, and the level a
 * close keeps (`closingLevel`) is found again by customer and metric only (store/seat-usage.ts carriedLevel: the
 * latest close of the customer, whichever subscription's).
 *
 * Postgres only, closes and invoices called as the period step calls them, in a fixed order (in production the
 * order of two subscriptions' closes at one instant is a race).
 *
 *   2031, one customer, plan A 10.00 a seat, plan B 5.00 a seat (prorated_sum), both monthly from Jan 1, no fee
 *   Jan 1   +3 seats, kept all year
 *   January closes: A first (claims the change: 3 seats, 30.00), then B (claims nothing: 0 seats, 0.00)
 *   February closes: A opens from the level B's January close kept (the latest close of the customer): 0 seats.
 *
 * The first test keeps the routing fact (a subscription row written directly, as nothing refuses it in Postgres);
 * the second shows the API refusing the second subscription, which is why no customer gets there any more.
 */
import type { Charge } from '../../domain/rating';
import type { Database } from '../../store/database';
import { createInvoicingActivities } from '../../activities/invoicing';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestApiKey } from '../support/api-keys';
import { serveApiOnly } from '../support/api-only';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'ts_seats', name: 'Seats', event_type: 'ts.seat', aggregation: 'prorated_sum', property: 'delta', allow_negative: true }); // as the API creates it
});

afterAll(async () => {
  await db?.destroy();
});

const month = (m: number) => ({ start: new Date(Date.UTC(2031, m - 1, 1)).toISOString(), end: new Date(Date.UTC(2031, m, 1)).toISOString() });
const seatCharges = (unitPrice: string) => [{ metricCode: 'ts_seats', price: { model: 'per_unit', unitPrice } }] as unknown as Charge[];

async function subscribe(customerId: string, code: string, unitPrice: string) {
  const charges = seatCharges(unitPrice);
  const plan = await insertPlan(db, { code, billing_interval: 'P1M', flat_fee: '0', charges: charges as never, settings: { disputeWindow: 'P90D' } });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customerId, plan_id: plan.id, status: 'active', workflow_id: `direct:${code}`, start_at: month(1).start, current_period_start: month(1).start, current_period_end: month(1).end })
    .returning('*');
  /** Closes month m's usage and invoices it, as the period step does: the invoice total. */
  return async (m: number): Promise<string> => {
    await db.transaction((trx) =>
      closeUsage(trx, { subscriptionId: subscription.id, customerId, periodStart: new Date(month(m).start), periodEnd: new Date(month(m).end), planId: plan.id, charges }),
    );
    return (await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: month(m + 1), usagePeriod: month(m) })).total;
  };
}

test('ingestion routes a usage event to the customer only: the first close of either subscription claims it', async () => {
  const customer = await insertCustomer(db, { external_id: 'two-subs-claim' });
  const billA = await subscribe(customer.id, 'two-subs-claim-a', '10.00');
  const billB = await subscribe(customer.id, 'two-subs-claim-b', '5.00');
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'three', eventType: 'ts.seat', occurredAt: new Date('2031-01-01T00:00:00Z'), properties: { delta: 3 } }]);
  expect(await db('usage_events').where({ customer_id: customer.id }).first('*')).not.toHaveProperty('subscription_id');
  expect([await billB(1), await billA(1)]).toEqual(['15.00', '0.00']);
});

// Hand-worked, 3 seats all of February: billed exactly once, A's 30.00 or B's 15.00, whichever subscription the
// seats belong to; never both, never neither. With both subscriptions live, A's February close opened at the level
// B's January close kept (0: B claimed nothing), then B's at the level A's February close kept: both billed 0.00,
// and the seats were billed by no invoice from February on, silently; closed in the other order in January, A and
// B each opened February at 3 seats and billed 30.00 and 15.00: the same seats twice. So the second subscription is
// refused (store/metered-overlaps.ts): one customer's usage of an event type is billed by at most one subscription
// at a time, and A alone bills the 3 seats every month.
test('a second live subscription pricing the seat metric is refused, and the one subscription bills the seats every period', async () => {
  const customer = await insertCustomer(db, { external_id: 'two-subs-seats' });
  const billA = await subscribe(customer.id, 'two-subs-seats-a', '10.00');
  await insertPlan(db, { code: 'two-subs-seats-b', billing_interval: 'P1M', flat_fee: '0', charges: seatCharges('5.00') as never, settings: { disputeWindow: 'P90D' } });
  const api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'app')).headers });
  try {
    const second = await api.http.call('POST', '/v1/subscriptions', { customer_id: customer.id, plan_code: 'two-subs-seats-b' });
    expect([second.status, second.json.code, second.json.event_types]).toEqual([409, 'metered_usage_overlap', ['ts.seat']]);
    expect(api.temporalCalls).toEqual([]);
  } finally {
    await api.close();
  }
  expect(await db('subscriptions').where({ customer_id: customer.id }).count<{ count: string }[]>('* as count')).toEqual([{ count: '1' }]);
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'three', eventType: 'ts.seat', occurredAt: new Date('2031-01-01T00:00:00Z'), properties: { delta: 3 } }]);
  expect([await billA(1), await billA(2)]).toEqual(['30.00', '30.00']);
});
