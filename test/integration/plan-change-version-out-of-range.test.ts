/**
 * A plan change naming a plan version no plan can have (past what the version column holds) is refused as
 * plan_not_found (problem+json), as any other unknown version is: it was a 500 (Postgres refused the comparison).
 * Nothing is written and the workflow is never asked.
 */
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test.each([2147483648, 9007199254740991])('plan change to plan_version %d: 404 plan_not_found, nothing written', async (version) => {
  const name = `pcv-${version}`;
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, { code: name, billing_interval: 'P1M', flat_fee: '10.00' });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `subscription:${name}`, start_at: new Date('2029-01-01T00:00:00Z'), current_period_start: new Date('2029-01-01T00:00:00Z'), current_period_end: new Date('2029-02-01T00:00:00Z') })
    .returning('*');
  for (const effective of ['immediate', 'period_end']) {
    const response = await api.http.call('POST', `/v1/subscriptions/${subscription.id}/plan-change`, { plan_code: name, plan_version: version, effective }, { 'Idempotency-Key': `${name}-${effective}` });
    expect({ status: response.status, type: response.type, code: response.json?.code }).toEqual({
      status: 404,
      type: expect.stringContaining('application/problem+json'),
      code: 'plan_not_found',
    });
  }
  expect(api.temporalCalls).toEqual([]);
});

test('a subscription on plan_version 2147483648: 404 plan_not_found, nothing written', async () => {
  const customer = await insertCustomer(db, { external_id: 'pcv-create' });
  await insertPlan(db, { code: 'pcv-create', billing_interval: 'P1M', flat_fee: '10.00' });
  const response = await api.http.call('POST', '/v1/subscriptions', { customer_id: customer.id, plan_code: 'pcv-create', plan_version: 2147483648 });
  expect([response.status, response.json?.code]).toEqual([404, 'plan_not_found']);
  expect(await db('subscriptions').where({ customer_id: customer.id })).toEqual([]);
  expect(api.temporalCalls).toEqual([]);
});
