/**
 * Crash safety: a worker process is killed (SIGKILL) at random points, again and again, while 50 subscriptions
 * go through three short periods with flaky cards, then restarted for good. Afterwards, for every invoice, the
 * gateway ledger holds at most one successful charge, and every invoice is paid or still in dunning.
 * The kill times come from a seeded generator: the seed is printed, and CRASH_TEST_SEED=<seed> replays them.
 */
import { Client, Connection } from '@temporalio/client';
import type { ChildProcess } from 'node:child_process';
import { planScheduleTerms } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { SUBSCRIPTION_WORKFLOW_TYPE, TASK_QUEUE } from '../../workflows/definitions';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { seededRandom, seedFromEnv } from '../support/seeded-random';
import { startWorkerProcessStack, type WorkerProcessStack } from '../support/worker-process-stack';

const SUBSCRIPTIONS = 50;
const PERIODS = 3;
const FLAKY_CARDS = ['pm_sandbox_ok', 'pm_sandbox_declines_1_then_ok', 'pm_sandbox_declines_2_then_ok', 'pm_sandbox_lost_response', 'pm_sandbox_declined'];

let stack: WorkerProcessStack;
let db: Database;
let connection: Connection;

beforeAll(async () => {
  stack = await startWorkerProcessStack();
  ({ db, connection } = stack);
}, 180_000);

afterAll(() => stack?.stop());

/** A worker process, launched as production launches a worker. */
const startWorker = (): ChildProcess => stack.startWorker().process;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('killing the worker at random points never charges an invoice twice and loses no invoice', async () => {
  const plan = await insertPlan(db, {
    code: 'crash-plan',
    name: 'Crash plan',
    billing_interval: 'PT15S',
    flat_fee: '9.99',
    settings: { dunning: { retryAfter: ['PT3S', 'PT3S'], finalAction: 'suspend' } },
  });
  const client = new Client({ connection });
  const startAt = new Date(Date.now() + 5_000);
  const workflowIds: string[] = [];
  for (let i = 0; i < SUBSCRIPTIONS; i += 1) {
    const customer = await insertCustomer(db, { payment_method: FLAKY_CARDS[i % FLAKY_CARDS.length] });
    const { input, workflowId } = await insertSubscription(db, customer, plan, startAt);
    await client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [{ ...input, plan: planScheduleTerms(plan) }] });
    workflowIds.push(workflowId);
  }

  // Kill and restart while the periods run: a random life of 0.5 to 4 seconds each time.
  const seed = seedFromEnv('CRASH_TEST_SEED');
  console.log(`worker-crashes: kill times from seed ${seed} (CRASH_TEST_SEED=${seed} replays them)`);
  const random = seededRandom(seed);
  let kills = 0;
  const chaosUntil = startAt.getTime() + PERIODS * 15_000;
  while (Date.now() < chaosUntil) {
    const worker = startWorker();
    await sleep(500 + Math.floor(random() * 3500));
    worker.kill('SIGKILL');
    kills += 1;
    await sleep(200);
  }
  startWorker(); // for good: stack.stop() kills it

  // Let the last worker finish the work of the first three periods (billing goes on after them; those later
  // invoices are not part of the check): each invoiced, and every charge attempt on them decided.
  const horizon = new Date(startAt.getTime() + PERIODS * 15_000);
  let progress = 'nothing yet';
  const invoices = await eventually(
    async () => {
      const rows = await db<InvoiceRow>('invoices').where({ kind: 'period' }).andWhere('period_start', '<', horizon);
      const perSubscription = new Map<string, number>();
      for (const invoice of rows) perSubscription.set(invoice.subscription_id!, (perSubscription.get(invoice.subscription_id!) ?? 0) + 1);
      // A subscription suspended by dunning bills no new period until paid, so it may stop short of three.
      const suspended = new Set((await db('subscriptions').where({ status: 'suspended' }).pluck('id')) as string[]);
      const allThere = perSubscription.size === SUBSCRIPTIONS && [...perSubscription].every(([id, count]) => count === PERIODS || suspended.has(id));
      const pending = await db('payments').where({ status: 'pending' }).whereIn('invoice_id', rows.map((invoice) => invoice.id)).count<{ count: string }[]>('* as count');
      // An invoice is decided once paid, given up on, or declined at least once (dunning follows). One finalized
      // just before the last restart may not have its first attempt yet: wait for it rather than judge it; one
      // that is never charged keeps this wait from ending and fails the test with the progress line.
      const declined = new Set((await db('payments').where({ status: 'failed' }).whereIn('invoice_id', rows.map((invoice) => invoice.id)).pluck('invoice_id')) as string[]);
      const undecided = rows.filter((invoice) => invoice.status !== 'paid' && invoice.status !== 'uncollectible' && !declined.has(invoice.id));
      progress = `${perSubscription.size} subscriptions invoiced, ${pending[0].count} payments pending, undecided: ${undecided.map((invoice) => invoice.number).join(', ') || 'none'}`;
      return allThere && Number(pending[0].count) === 0 && undecided.length === 0 ? rows : undefined;
    },
    () => `the first ${PERIODS} periods to settle (seed ${seed}): ${progress}`,
    { timeoutMs: 180_000, intervalMs: 1_000 },
  );

  const charges: { idempotency_key: string; status: string }[] = await db('sandbox_gateway_charges').select('idempotency_key', 'status');
  const successesByInvoice = new Map<string, number>();
  for (const charge of charges) {
    if (charge.status !== 'succeeded') continue;
    const invoiceId = charge.idempotency_key.split(':')[1];
    successesByInvoice.set(invoiceId, (successesByInvoice.get(invoiceId) ?? 0) + 1);
  }
  const failedAttempts = new Set((await db('payments').where({ status: 'failed' }).pluck('invoice_id')) as string[]);
  const problems: string[] = [];
  for (const invoice of invoices) {
    const successes = successesByInvoice.get(invoice.id) ?? 0;
    if (successes > 1) problems.push(`${invoice.number}: ${successes} successful charges`);
    if (invoice.status === 'paid' && successes !== 1) problems.push(`${invoice.number}: paid without exactly one charge`);
    // In dunning: still open after a declined attempt (retries or suspension follow), or given up on.
    const inDunning = (invoice.status === 'open' && failedAttempts.has(invoice.id)) || invoice.status === 'uncollectible';
    if (invoice.status !== 'paid' && !inDunning) problems.push(`${invoice.number}: ${invoice.status} with no declined attempt`);
  }
  const paid = invoices.filter((invoice) => invoice.status === 'paid').length;
  // The figure for the issue note.
  console.log(JSON.stringify({ seed, kills, invoices: invoices.length, paid, inDunning: invoices.length - paid, suspended: (await db('subscriptions').where({ status: 'suspended' })).length, successfulChargesOnThem: invoices.reduce((sum, invoice) => sum + (successesByInvoice.get(invoice.id) ?? 0), 0) }));
  expect({ seed, problems }).toEqual({ seed, problems: [] }); // the seed in the message, to replay a failure
  expect(kills).toBeGreaterThanOrEqual(5);
}, 600_000);
