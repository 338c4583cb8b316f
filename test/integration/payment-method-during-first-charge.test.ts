/**
 * A new payment method posted while the invoice's first charge is at the gateway with the old one. The charge read
 * the old token before the new one committed; the API's dunning hook, run right after that commit, looks for the
 * customer's subscriptions that wait for a payment method (past_due, suspended, a retry announced) and finds none:
 * this one is still active, its first attempt not answered yet. Nobody tells its workflow. The old card is then
 * declined as expired (not retryable) and the plan suspends until a new payment method arrives: the one that
 * already did. The subscription stops billing for good with a working card on file.
 *
 * Timeline (2031, UTC), 20.00 a month, dunning: retries after 2 and 5 days, then suspend:
 *   Mar 1  period invoice, attempt 1 with pm_old at the gateway (held)
 *          POST /v1/customers/:id/payment-method pm_sandbox_ok  -> 200
 *          the gateway answers attempt 1: expired_card (not retryable)
 *   Mar 1 12:00  expected: attempt 2 with pm_sandbox_ok paid the invoice
 * Time-skipping server and a real Postgres; the gateway is the sandbox, except that pm_old is held and declined.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import Decimal from 'decimal.js';
import { createActivities } from '../../activities';
import { createApp } from '../../api/app';
import type { PlanSettings } from '../../domain/plan-terms';
import type { ChargeRequest, ChargeResult, PaymentGateway, RefundRequest, RefundResult } from '../../payments/gateway';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { SUBSCRIPTION_WORKFLOW_TYPE, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

/** The sandbox, except that a charge on pm_old waits for `release()` and is then declined as an expired card. */
class HeldOldCardGateway implements PaymentGateway {
  private readonly sandbox: SandboxGateway;
  private releaseHeld: () => void = () => undefined;
  private held: Promise<void> = Promise.resolve();

  constructor(db: Database) {
    this.sandbox = new SandboxGateway(db);
  }

  /** pm_old's next charges wait until `release()`. */
  hold(): void {
    this.held = new Promise<void>((resolve) => {
      this.releaseHeld = resolve;
    });
  }

  release(): void {
    this.releaseHeld();
  }

  async charge(request: ChargeRequest): Promise<ChargeResult> {
    if (request.paymentMethod !== 'pm_old') return this.sandbox.charge(request);
    await this.held;
    return { outcome: 'declined', chargeId: `ch_old_${request.idempotencyKey}`, amount: new Decimal(request.amount), currency: request.currency, declineCode: 'expired_card', retryable: false };
  }

  findCharge(idempotencyKey: string): Promise<ChargeResult | null> {
    return this.sandbox.findCharge(idempotencyKey);
  }

  refund(request: RefundRequest): Promise<RefundResult> {
    return this.sandbox.refund(request);
  }
}

let env: TestWorkflowEnvironment;
let db: Database;
let worker: Worker;
let running: Promise<void>;
let gateway: HeldOldCardGateway;
let api: TestHttp;

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  gateway = new HeldOldCardGateway(db);
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    activities: createActivities({ db, gateway }),
  });
  running = worker.run();
  api = await serve(createApp({ db, temporal: env.client, log: () => undefined }), { headers: (await createTestApiKey(db, 'admin')).headers });
});

afterAll(async () => {
  gateway?.release();
  await api?.close();
  worker?.shutdown();
  await running;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

async function advanceTo(instant: string, stepMs = 3_600_000): Promise<void> {
  const target = new Date(instant).getTime();
  for (;;) {
    const now = await env.currentTimeMs();
    if (now >= target) return;
    await env.sleep(Math.min(stepMs, target - now));
  }
}

// Suspend: the API told nobody (store/subscriptions.ts `unpaidSubscriptionWorkflowIds`), and the suspension waited for
// a new card already on file. Cancel: the decline was final, and the workflow canceled in the same task, before any
// signal could reach it; the charge now counts a decline as retryable when the card was replaced meanwhile.
test.each([
  ['suspend', 2031],
  ['cancel', 2032],
] as const)('a payment method posted while the first charge is at the gateway retries the invoice when that charge is declined (final action %s)', async (finalAction, year) => {
  gateway.hold();
  const settings: PlanSettings = { usageGracePeriod: 'PT1M', dunning: { retryAfter: ['P2D', 'P5D'], finalAction } };
  const plan = await insertPlan(db, { code: `pm-during-first-charge-${finalAction}`, billing_interval: 'P1M', flat_fee: '20.00', settings: settings as Record<string, unknown> });
  const customer = await insertCustomer(db, { payment_method: 'pm_old' });
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date(`${year}-03-01T00:00:00Z`));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });

  // Up to the day before in one step (nothing runs before the start: hour steps from the server's clock took 45,875
  // round trips, 120 s of a 180-s limit on a loaded machine), then by the hour.
  await advanceTo(`${year}-02-28T00:00:00Z`, 366 * 86_400_000);
  await advanceTo(`${year}-03-01T00:00:00Z`);
  // Attempt 1 is at the gateway with the old card (its payment row is pending).
  const invoice = await eventually(
    () => db<InvoiceRow>('invoices').where({ subscription_id: row.id, status: 'open' }).whereExists(db('payments').whereRaw('payments.invoice_id = invoices.id').andWhere({ status: 'pending' })).first(),
    'the first charge at the gateway',
  );

  const posted = await api.call('POST', `/v1/customers/${customer.id}/payment-method`, { payment_method: 'pm_sandbox_ok' });
  expect(posted.status).toBe(200);
  gateway.release();
  await eventually(async () => (await db('payments').where({ invoice_id: invoice.id, attempt: 1 }).first())?.status === 'failed', 'attempt 1 declined');

  await advanceTo(`${year}-03-01T12:00:00Z`);
  const after = (await db<InvoiceRow>('invoices').where({ id: invoice.id }).first())!;
  const attempts = (await db('payments').where({ invoice_id: invoice.id }).orderBy('attempt')).map((payment: { payment_method: string; status: string }) => `${payment.payment_method} ${payment.status}`);
  const state = await handle.query(subscriptionStateQuery);
  // Before the fix: { status: 'open', attempts: ['pm_old failed'] }, subscription suspended with pm_sandbox_ok on file
  // (final action cancel, with the API's signal alone: uncollectible, canceled).
  expect({ status: after.status, attempts, subscription: state.status }).toEqual({ status: 'paid', attempts: ['pm_old failed', 'pm_sandbox_ok succeeded'], subscription: 'active' });
  await handle.terminate('test done');
}, 180_000);
