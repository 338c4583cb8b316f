/**
 * An immediate plan change that lands while the period is being opened, before its usage stretch is opened: the
 * trial has converted (the status is `active` already, so the change is admitted) and the workflow waits on the
 * status record. The change closes the usage from the period's start to the change on its proration invoice, then
 * the opening goes on and opens the period's stretch at the period's start again: the next period invoice found the
 * proration's usage closure (same period start) and billed that usage a second time, and the usage after the change
 * was never billed.
 *
 * The status record is held (a slow database) until the change has been applied. Time-skipping server, real Postgres.
 *   2035-01-01  trial (P14D) on basic 10.00, tokens at 0.01
 *   2035-01-15  trial ends; the period opens; immediate change to pro 20.00, tokens at 0.02
 *               100 tokens at the period's start (basic: 1.00 on the proration invoice)
 *   2035-01-16  300 tokens (pro: 6.00 on the next period invoice)
 *   2035-02-15  INV: pro 20.00 + 6.00
 */
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { planScheduleTerms } from '../../domain/plan-terms';
import type { Charge } from '../../domain/rating';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { insertUsageEvents } from '../../store/usage';
import { changePlanUpdate, SUBSCRIPTION_WORKFLOW_TYPE } from '../../workflows/definitions';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

const QUEUE = 'plan-change-while-trial-converts';
let env: TestWorkflowEnvironment;
let db: Database;
let worker: Worker;
let running: Promise<void>;
let holdActiveStatus: Promise<void> | null = null;
let releaseActiveStatus: () => void = () => undefined;
/** Called when the held status write has begun: the workflow's status reads `active` from then on. */
let statusWriteHeld: () => void = () => undefined;

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  await db('billable_metrics').insert({ code: 'tokens', name: 'Tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens' });
  const activities = createActivities({ db, gateway: new SandboxGateway(db) });
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: QUEUE,
    workflowBundle: await workflowBundle(),
    activities: {
      ...activities,
      async recordSubscriptionStatus(change: Parameters<typeof activities.recordSubscriptionStatus>[0]) {
        if (change.status === 'active' && holdActiveStatus) {
          statusWriteHeld();
          await holdActiveStatus;
        }
        return activities.recordSubscriptionStatus(change);
      },
    },
  });
  running = worker.run();
}, 120_000);

afterAll(async () => {
  worker?.shutdown();
  await running;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

const tokenCharge = (unitPrice: string): Charge[] => [{ metricCode: 'tokens', price: { model: 'per_unit', unitPrice } }];
const until = async (check: () => Promise<boolean>, ms: number): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
};
async function advanceTo(instant: string, stepMs = 86_400_000): Promise<void> {
  for (;;) {
    const now = await env.currentTimeMs();
    if (now >= new Date(instant).getTime()) return;
    await env.sleep(Math.min(stepMs, new Date(instant).getTime() - now));
  }
}

test('a change admitted while the converted trial opens its first period bills each event once', async () => {
  const basic = await insertPlan(db, { code: 'trial-basic', billing_interval: 'P1M', flat_fee: '10.00', trial_period: 'P14D', settings: { usageGracePeriod: 'PT1H' }, charges: tokenCharge('0.01') as unknown[] });
  const pro = await insertPlan(db, { code: 'trial-pro', billing_interval: 'P1M', flat_fee: '20.00', settings: { usageGracePeriod: 'PT1H' }, charges: tokenCharge('0.02') as unknown[] });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, basic, new Date('2035-01-01T00:00:00Z'));
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'at-start', eventType: 'llm.request', occurredAt: new Date('2035-01-15T00:00:00Z'), properties: { tokens: 100 } }]);
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: QUEUE, args: [input] });
  await advanceTo('2035-01-14T23:00:00Z');

  holdActiveStatus = new Promise((resolve) => (releaseActiveStatus = resolve));
  const held = new Promise<void>((resolve) => (statusWriteHeld = resolve));
  await advanceTo('2035-01-15T00:00:00Z', 60_000);
  // Sent once the status write is held, not as soon as the clock reaches the trial's end: delivered with the trial's
  // timer, the update was validated before the period opened and refused (subscription_not_active).
  await held;
  // The trial has converted and the status record is held: the change is admitted now.
  const change = handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(pro), effective: 'immediate', requestedBy: 'test' }] });
  await until(async () => (await db('subscriptions').where({ id: row.id }).first('plan_id')).plan_id === pro.id, 60_000).finally(() => releaseActiveStatus());
  holdActiveStatus = null;
  await change;

  await advanceTo('2035-01-16T00:00:00Z');
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'after-change', eventType: 'llm.request', occurredAt: new Date('2035-01-16T00:00:00Z'), properties: { tokens: 300 } }]);
  await advanceTo('2035-02-15T02:00:00Z');
  await handle.terminate('test done');

  const invoices = await db<InvoiceRow>('invoices').where({ subscription_id: row.id }).orderBy([{ column: 'period_start' }, { column: 'created_at' }]);
  const described = await Promise.all(
    invoices.map(async (invoice) => {
      const lines = await db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id }).orderBy('position');
      return `${invoice.kind} ${invoice.period_start.toISOString().slice(0, 10)} ${Number(invoice.total).toFixed(2)} ${lines.filter((line) => line.kind === 'usage').map((line) => Number(line.amount).toFixed(2)).join(',') || '-'}`;
    }),
  );
  // The first period's fee is basic's (the plan in force as it opened); the proration credits basic's unused time.
  const prorationTotal = Number(invoices.find((invoice) => invoice.kind === 'proration')!.total).toFixed(2);
  // Each event billed once: the one at the period's start on the proration invoice (basic), the later one at pro.
  expect({ described, unbilled: (await db('usage_events').where({ customer_id: customer.id }).whereNull('period_close_id')).length }).toEqual({
    described: ['period 2035-01-15 10.00 -', `proration 2035-01-15 ${prorationTotal} 1.00`, 'period 2035-02-15 26.00 6.00'],
    unbilled: 0,
  });
}, 240_000);
