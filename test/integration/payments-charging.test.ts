/**
 * Charging invoices at most once, against a real Postgres and (for the lost-response run) a real time-skipping
 * Temporal server that retries chargeInvoice the way production does. The sandbox gateway's own ledger
 * (sandbox_gateway_charges) counts the money that really moved.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import type { ChargeInvoiceResult } from '../../activities/payments';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import type { CustomerRow } from '../../store/customers';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';
import { createTimeSkippingEnvironment } from '../support/temporal';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

let invoiceSequence = 0;

/** A finalized (open) invoice, as createPeriodInvoice leaves it, for a customer. */
async function insertOpenInvoice(customer: CustomerRow, total = '12.34', currency = 'USD'): Promise<InvoiceRow> {
  invoiceSequence += 1;
  const [row] = await db<InvoiceRow>('invoices')
    .insert({
      number: `TEST-${randomUUID().slice(0, 8)}-${invoiceSequence}`,
      customer_id: customer.id,
      subscription_id: null,
      kind: 'period',
      status: 'open',
      currency,
      period_start: new Date('2030-01-01T00:00:00Z'),
      period_end: new Date('2030-02-01T00:00:00Z'),
      total,
      finalized_at: new Date(),
    })
    .returning('*');
  return row;
}

async function ledgerFor(invoiceIds: readonly string[]): Promise<Array<{ idempotency_key: string; status: string; decline_code: string | null }>> {
  return db('sandbox_gateway_charges').whereIn('reference', invoiceIds).orderBy('created_at');
}

async function statusOf(invoiceId: string): Promise<string> {
  return (await db<InvoiceRow>('invoices').where({ id: invoiceId }).first())!.status;
}

describe('the lost-response card through a real Temporal worker', () => {
  let env: TestWorkflowEnvironment;

  beforeAll(async () => {
    // 200 first attempts fail on purpose; test/support/quiet-temporal.ts keeps the worker from logging each one.
    env = await createTimeSkippingEnvironment();
  });

  afterAll(async () => {
    await env?.teardown();
  });

  test('200 invoices charged through pm_sandbox_lost_response yield exactly 200 gateway charges and 200 paid invoices', async () => {
    // Every charge commits in the gateway and then times out, as if the response were lost. Temporal retries
    // chargeInvoice; the retry finds the charge by its idempotency key instead of charging again.
    const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_lost_response' });
    const invoices = await Promise.all(Array.from({ length: 200 }, () => insertOpenInvoice(customer)));
    const taskQueue = `payments-${randomUUID()}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: require.resolve('./payments-workflows'),
      activities: createActivities({ db, gateway: new SandboxGateway(db) }),
      maxConcurrentActivityTaskExecutions: 200,
    });

    const started = Date.now();
    const results = await worker.runUntil(async () => {
      const handles = await Promise.all(
        invoices.map((invoice) =>
          env.client.workflow.start('chargeInvoiceWorkflow', {
            workflowId: `charge:${invoice.id}`,
            taskQueue,
            args: [{ invoiceId: invoice.id, attempt: 1 }],
          }),
        ),
      );
      // Results one at a time: 200 concurrent long polls stall the Java time-skipping test server.
      const outcomes: ChargeInvoiceResult[] = [];
      for (const handle of handles) outcomes.push(await handle.result());
      const chargedInMs = Date.now() - started;
      // Every charge went through at least two activity attempts: the lost response, then the lookup.
      const retried: number[] = [];
      for (const handle of handles) {
        const history = await handle.fetchHistory();
        retried.push(Math.max(...(history.events ?? []).map((event) => event.activityTaskStartedEventAttributes?.attempt ?? 0)));
      }
      return { outcomes, retried, chargedInMs };
    });

    const ids = invoices.map((invoice) => invoice.id);
    expect(results.outcomes.every((outcome) => outcome.outcome === 'succeeded' && outcome.invoiceStatus === 'paid')).toBe(true);
    expect(results.retried.every((attempts) => attempts >= 2)).toBe(true);
    const charges = await ledgerFor(ids);
    expect(charges).toHaveLength(200);
    expect(new Set(charges.map((charge) => charge.idempotency_key)).size).toBe(200);
    expect(charges.every((charge) => charge.status === 'succeeded')).toBe(true);
    const paid = await db<InvoiceRow>('invoices').whereIn('id', ids).where({ status: 'paid' });
    expect(paid).toHaveLength(200);
    const payments = await db('payments').whereIn('invoice_id', ids);
    expect(payments).toHaveLength(200);
    expect(payments.every((payment) => payment.status === 'succeeded' && payment.attempt === 1)).toBe(true);
    const events = await db('outbox').whereIn('aggregate_id', ids).where({ event_type: 'payment.succeeded' });
    expect(events).toHaveLength(200);
    console.log(JSON.stringify({ name: 'payments.lost_response.200', invoices: 200, gatewayCharges: charges.length, paidInvoices: paid.length, maxActivityAttempts: Math.max(...results.retried), chargedInMs: results.chargedInMs }));
  }, 300_000);
});

describe('chargeInvoice called again after a thrown timeout, as the retry would', () => {
  test('the second call finds the committed charge and does not charge again', async () => {
    const activities = createActivities({ db, gateway: new SandboxGateway(db) });
    const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_lost_response' });
    const invoice = await insertOpenInvoice(customer, '99.99');

    await expect(activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).rejects.toMatchObject({ type: 'gateway_unavailable', nonRetryable: false });
    expect(await statusOf(invoice.id)).toBe('open');
    expect(await db('payments').where({ invoice_id: invoice.id })).toEqual([expect.objectContaining({ status: 'pending' })]);

    const retried = await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 });
    expect(retried).toMatchObject({ outcome: 'succeeded', invoiceStatus: 'paid', settledAttempt: 1 });
    expect(await ledgerFor([invoice.id])).toHaveLength(1);
    // And once more: already paid, nothing charged.
    expect(await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
    expect(await ledgerFor([invoice.id])).toHaveLength(1);
  });

  test('a dunning attempt started while an earlier attempt is unresolved settles that one instead of charging twice', async () => {
    const activities = createActivities({ db, gateway: new SandboxGateway(db) });
    const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_lost_response' });
    const invoice = await insertOpenInvoice(customer);
    await expect(activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).rejects.toMatchObject({ type: 'gateway_unavailable' });

    const second = await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 2 });
    expect(second).toMatchObject({ outcome: 'succeeded', invoiceStatus: 'paid', settledAttempt: 1 });
    expect(await ledgerFor([invoice.id])).toHaveLength(1);
    expect(await db('payments').where({ invoice_id: invoice.id })).toEqual([expect.objectContaining({ attempt: 1, status: 'succeeded' })]);
  });

  test('a payment row left pending by a crash before the gateway call is charged under its own key, once', async () => {
    const activities = createActivities({ db, gateway: new SandboxGateway(db) });
    const customer = await insertCustomer(db);
    const invoice = await insertOpenInvoice(customer);
    // The crash: the intent was written, the gateway never heard of it.
    await db('payments').insert({
      invoice_id: invoice.id,
      attempt: 1,
      status: 'pending',
      amount: invoice.total,
      currency: invoice.currency,
      payment_method: 'pm_sandbox_ok',
      idempotency_key: `payment:${invoice.id}:1`,
    });
    expect(await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded', settledAttempt: 1 });
    expect(await ledgerFor([invoice.id])).toEqual([expect.objectContaining({ idempotency_key: `payment:${invoice.id}:1` })]);
  });

  test('duplicate concurrent requests for the same attempt charge once', async () => {
    const activities = createActivities({ db, gateway: new SandboxGateway(db) });
    const customer = await insertCustomer(db);
    const invoice = await insertOpenInvoice(customer);
    const results = await Promise.all(Array.from({ length: 8 }, () => activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 })));
    expect(results.every((result) => result.outcome === 'succeeded')).toBe(true);
    expect(await ledgerFor([invoice.id])).toHaveLength(1);
    expect(await db('payments').where({ invoice_id: invoice.id })).toHaveLength(1);
    expect(await db('outbox').where({ aggregate_id: invoice.id, event_type: 'payment.succeeded' })).toHaveLength(1);
  });
});

describe('declines', () => {
  test('pm_sandbox_declines_2_then_ok declines the first two attempts of an invoice, then succeeds', async () => {
    // Dunning timeline for one invoice: attempt 1 declined, attempt 2 declined, attempt 3 paid.
    const activities = createActivities({ db, gateway: new SandboxGateway(db) });
    const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declines_2_then_ok' });
    const invoice = await insertOpenInvoice(customer, '40.00');

    const first = await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 });
    expect(first).toMatchObject({ outcome: 'declined', invoiceStatus: 'open', detail: 'insufficient_funds', retryable: true });
    // The retry of attempt 1 (same key) repeats its answer; it is not a new decline.
    expect(await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toEqual(first);
    expect(await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 2 })).toMatchObject({ outcome: 'declined', retryable: true });
    expect(await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 3 })).toMatchObject({ outcome: 'succeeded', invoiceStatus: 'paid', settledAttempt: 3 });

    expect((await ledgerFor([invoice.id])).map((charge) => charge.status)).toEqual(['declined', 'declined', 'succeeded']);
    const payments = await db('payments').where({ invoice_id: invoice.id }).orderBy('attempt');
    expect(payments.map((payment) => [payment.attempt, payment.status, payment.failure_code])).toEqual([
      [1, 'failed', 'insufficient_funds'],
      [2, 'failed', 'insufficient_funds'],
      [3, 'succeeded', null],
    ]);
    const events = await db('outbox').where({ aggregate_id: invoice.id }).orderBy('id').pluck('event_type');
    expect(events).toEqual(['payment.failed', 'payment.failed', 'payment.succeeded']);
    // The count is per invoice: the same card on a new invoice declines again first.
    const next = await insertOpenInvoice(customer, '40.00');
    expect(await activities.chargeInvoice({ invoiceId: next.id, attempt: 1 })).toMatchObject({ outcome: 'declined' });
  });

  test('an expired card is a non-retryable decline; insufficient funds is retryable', async () => {
    const activities = createActivities({ db, gateway: new SandboxGateway(db) });
    const expired = await insertOpenInvoice(await insertCustomer(db, { payment_method: 'pm_sandbox_expired' }));
    const poor = await insertOpenInvoice(await insertCustomer(db, { payment_method: 'pm_sandbox_declined' }));

    expect(await activities.chargeInvoice({ invoiceId: expired.id, attempt: 1 })).toMatchObject({
      outcome: 'declined',
      invoiceStatus: 'open',
      detail: 'expired_card',
      retryable: false,
    });
    expect(await activities.chargeInvoice({ invoiceId: poor.id, attempt: 1 })).toMatchObject({ outcome: 'declined', detail: 'insufficient_funds', retryable: true });
    const failed = await db('outbox').where({ aggregate_id: expired.id, event_type: 'payment.failed' }).first();
    expect(failed.payload).toMatchObject({ declineCode: 'expired_card', retryable: false, amount: '12.34', currency: 'USD' });
  });

  test('no payment method on file is a retryable decline without a gateway call; a new method then pays', async () => {
    const activities = createActivities({ db, gateway: new SandboxGateway(db) });
    const customer = await insertCustomer(db, { payment_method: null });
    const invoice = await insertOpenInvoice(customer);
    expect(await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'declined', detail: 'payment_method_missing', retryable: true });
    expect(await ledgerFor([invoice.id])).toHaveLength(0);

    await db('customers').where({ id: customer.id }).update({ payment_method: 'pm_sandbox_ok' });
    expect(await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded', invoiceStatus: 'paid' });
  });
});

describe('other sandbox cards and invoice states', () => {
  test('pm_sandbox_slow answers after 2 seconds, and succeeds', async () => {
    // The gateway's wait is recorded, not slept: the charge must come after a 2000 ms wait, with nothing charged during it.
    const invoice = await insertOpenInvoice(await insertCustomer(db, { payment_method: 'pm_sandbox_slow' }));
    const waits: { ms: number; chargesMeanwhile: number }[] = [];
    const wait = async (ms: number): Promise<void> => {
      waits.push({ ms, chargesMeanwhile: (await ledgerFor([invoice.id])).length });
    };
    const activities = createActivities({ db, gateway: new SandboxGateway(db, { wait }) });
    expect(await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
    expect(waits).toEqual([{ ms: 2000, chargesMeanwhile: 0 }]);
    expect(await ledgerFor([invoice.id])).toHaveLength(1);
  });

  test('an unknown token declines as unknown_payment_method, not retryable', async () => {
    const activities = createActivities({ db, gateway: new SandboxGateway(db) });
    const invoice = await insertOpenInvoice(await insertCustomer(db, { payment_method: 'pm_no_such_card' }));
    expect(await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'declined', detail: 'unknown_payment_method', retryable: false });
  });

  test('a zero invoice is paid without a gateway call', async () => {
    const activities = createActivities({ db, gateway: new SandboxGateway(db) });
    const invoice = await insertOpenInvoice(await insertCustomer(db), '0');
    expect(await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded', paymentId: null });
    expect(await ledgerFor([invoice.id])).toHaveLength(0);
    expect(await statusOf(invoice.id)).toBe('paid');
  });

  test('markInvoiceUncollectible ends dunning once, with an audit record; a later payment still settles the invoice', async () => {
    const activities = createActivities({ db, gateway: new SandboxGateway(db) });
    const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declined' });
    const invoice = await insertOpenInvoice(customer);
    await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 });

    const marked = await activities.markInvoiceUncollectible({ invoiceId: invoice.id, reason: 'dunning exhausted after 4 attempts' });
    expect(marked).toEqual({ invoiceStatus: 'uncollectible', changed: true });
    expect(await activities.markInvoiceUncollectible({ invoiceId: invoice.id, reason: 'again' })).toEqual({ invoiceStatus: 'uncollectible', changed: false });
    expect(await db('audit_log').where({ subject_id: invoice.id, action: 'invoice.marked_uncollectible' })).toEqual([
      expect.objectContaining({ actor: 'workflow', reason: 'dunning exhausted after 4 attempts' }),
    ]);
    expect(await db('outbox').where({ aggregate_id: invoice.id, event_type: 'invoice.uncollectible' })).toHaveLength(1);

    await db('customers').where({ id: customer.id }).update({ payment_method: 'pm_sandbox_ok' });
    expect(await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded', invoiceStatus: 'paid' });
    expect(await activities.markInvoiceUncollectible({ invoiceId: invoice.id, reason: 'late' })).toEqual({ invoiceStatus: 'paid', changed: false });
  });
});
