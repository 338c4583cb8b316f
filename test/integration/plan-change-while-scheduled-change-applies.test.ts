/**
 * A plan change that arrives while the period opens and its scheduled plan change is being applied (here: the
 * write that switches the plan takes longer than a workflow task, so the request is delivered in between). The
 * immediate change read the plan in force before the scheduled one and credited that plan's unused time, though the
 * period's invoice bills the scheduled plan's fee; a change "at period end" answered as scheduled was dropped when
 * the scheduled one finished applying. Such a request is refused (409 period_opening) until the period is open.
 * Time-skipping server (real time runs while the held write is outstanding) and a real Postgres.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { CLASSIFIED_ACTIVITIES, createActivities } from '../../activities';
import { classifyActivityFailures } from '../../activities/failures';
import type { PlanChangeRecord } from '../../contract/subscription';
import { planScheduleTerms } from '../../domain/plan-terms';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { changePlanUpdate, SUBSCRIPTION_WORKFLOW_TYPE, SubscriptionState, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { runHistories } from '../support/histories';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let worker: Worker;
let running: Promise<void>;
let switching: () => void = () => undefined;
let answer: (value: string) => void = () => undefined;
const answered = new Promise<string>((resolve) => (answer = resolve));

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  const activities = createActivities({ db, gateway: new SandboxGateway(db) });
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    activities: classifyActivityFailures(
      {
        ...activities,
        // A scheduled change taking effect, held (a local activity: the workflow task stays open and is heartbeated)
        // until the immediate change sent meanwhile has been answered. A fixed delay let a loaded machine deliver the
        // request only after the write, when the period was open and accepting it was right (a CI run).
        async applyPlanChange(change: PlanChangeRecord) {
          if (change.effective === 'period_end') {
            switching();
            await Promise.race([answered, new Promise((resolve) => setTimeout(resolve, 60_000).unref())]);
          }
          return activities.applyPlanChange(change);
        },
      },
      CLASSIFIED_ACTIVITIES,
    ),
  });
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

async function skipTo(instant: string): Promise<void> {
  const target = new Date(instant).getTime();
  const now = await env.currentTimeMs();
  if (target > now) await env.sleep(target - now);
}

const linesOf = async (invoice: InvoiceRow | undefined) =>
  (await db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice!.id }).orderBy('position')).map((line) => [line.kind, line.description, Number(line.amount).toFixed(2)]);

test('an immediate change while the scheduled one is applied is refused (409 period_opening), nothing prorated', async () => {
  const large = await insertPlan(db, { code: 'switch-large', billing_interval: 'P1M', flat_fee: '100.00' });
  const small = await insertPlan(db, { code: 'switch-small', billing_interval: 'P1M', flat_fee: '50.00' });
  const medium = await insertPlan(db, { code: 'switch-medium', billing_interval: 'P1M', flat_fee: '80.00' });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, large, new Date('2032-01-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await skipTo('2032-01-02T00:00:00Z');
  await handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(small), effective: 'period_end', requestedBy: 'test' }] });

  const switchStarted = new Promise<void>((resolve) => (switching = resolve));
  const skipping = skipTo('2032-02-02T00:00:00Z'); // February opens on Feb 1 and applies the change
  await switchStarted;
  void handle.executeUpdate(changePlanUpdate, { args: [{ plan: planScheduleTerms(medium), effective: 'immediate', requestedBy: 'test' }] }).then(
    () => answer('changed'),
    (error: Error) => answer((error.cause as Error | undefined)?.message ?? error.message),
  );
  await skipping;
  await answered;
  await eventually(async () => ((await handle.query<SubscriptionState>(subscriptionStateQuery)).planCode !== 'switch-large' ? true : null), 'the plan switch', { timeoutMs: 60_000 });
  const proration = await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'proration' }).first();
  const february = await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'period' }).andWhere('period_start', '2032-02-01T00:00:00Z').first();
  const outcome = { answer: await answered, february: february && (await linesOf(february)), proration: proration ? await linesOf(proration) : null };
  // Refused while February opens: February bills switch-small's fee, nothing is prorated, and the plan is switch-small.
  // Before: answered "changed"; the proration credited switch-large's unused time (-100.00 x ~29/29), which February
  // never billed, while February billed switch-small's 50.00.
  expect(outcome).toEqual({
    answer: 'period_opening',
    february: [['flat_fee', expect.stringContaining('switch-small'), '50.00']],
    proration: null,
  });
  await handle.terminate('test done');
  const bundle = await workflowBundle();
  for (const [index, history] of (await runHistories(env.client, handle.workflowId)).entries()) {
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, `plan-change-while-scheduled-change-applies-run-${index}`);
  }
});
