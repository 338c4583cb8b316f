/**
 * `invoicing.finalize`: invoices finalized per second by 1, 10 and 40 concurrent callers, each running the
 * finalizing step of a period invoice (draft, lines, finalize, the subscription's new period: one transaction)
 * on a durable Postgres. Three variants of the same step run in the same process, interleaved:
 * - `invoicing.finalize.N`: ours: finalize into the numbering queue, then the batch numbering step after commit;
 * - `invoicing.finalize.N.no_numbering` (the baseline): the same transaction, no number at all;
 * - `invoicing.finalize.row_lock.N`: the design before batch numbering: the counter row locked from the number
 *   to the commit (store/invoice-numbering-baseline.ts).
 * `invoicing.finalize.scaling` is 40 callers over 1 caller for ours, beside the same ratio for the row lock;
 * `invoicing.finalize.no_numbering.scaling` is that ratio for the step without numbering: what the machine allows.
 */
import type { DraftInvoiceLine } from '../domain/invoice';
import { insertCustomerFixtures, insertPlanFixtures, insertSubscriptionFixtures } from '../store/bulk-fixtures';
import type { Database } from '../store/database';
import { countUnnumberedInvoices, finalizeInvoiceUnderCounterLock, truncateInvoices } from '../store/invoice-numbering-baseline';
import { finalizeInvoice, insertDraftInvoice, issueFinalizedInvoice, numberingRunsStarted } from '../store/invoices';
import { startSubscriptionPeriod } from '../store/subscription-billing';
import { startThrowawayDatabase } from '../store/throwaway-database';
import { inTransaction } from '../store/transactions';
import { describeTreeCpu, describeTreeCpuPer, sampleTreeCpu } from './process-cpu';
import { Benchmark, BenchResult, progress } from './report';

const CONCURRENCY = [1, 10, 40] as const;
const PHASE_SECONDS = 3;
const ROUNDS = 3;
/** One connection per caller, plus room for the numbering step's own transaction. */
const POOL_MAX = 45;

type Variant = 'batched' | 'no_numbering' | 'row_lock';
const VARIANTS: readonly Variant[] = ['no_numbering', 'batched', 'row_lock'];

interface Subscription {
  readonly id: string;
  readonly customer_id: string;
}

const monthStart = (month: number): string => new Date(Date.UTC(2031, month, 1)).toISOString();

function linesOf(start: string, end: string): DraftInvoiceLine[] {
  return [
    { kind: 'flat_fee', description: 'Bench plan', metricCode: null, quantity: '1', amount: '49.00', periodStart: start, periodEnd: end, breakdown: { model: 'flat' } },
    { kind: 'usage', description: 'API calls', metricCode: 'api_calls', quantity: '12000', amount: '4.50', periodStart: start, periodEnd: end, breakdown: { model: 'per_unit' } },
  ];
}

/** The finalizing step of one period invoice, in the variant's design. */
async function finalizeStep(db: Database, variant: Variant, subscription: Subscription, month: number): Promise<void> {
  const period = { start: monthStart(month), end: monthStart(month + 1) };
  const finalized = await inTransaction(db, async (trx) => {
    const draft = await insertDraftInvoice(trx, {
      customerId: subscription.customer_id,
      subscriptionId: subscription.id,
      kind: 'period',
      currency: 'USD',
      periodStart: period.start,
      periodEnd: period.end,
    });
    if (!draft) throw new Error(`invoice for ${subscription.id} ${period.start} exists: the benchmark reuses a period`);
    const lines = linesOf(period.start, period.end);
    const row = variant === 'row_lock' ? await finalizeInvoiceUnderCounterLock(trx, draft, lines) : await finalizeInvoice(trx, draft, lines);
    await startSubscriptionPeriod(trx, subscription.id, period);
    return row;
  });
  // As the invoicing activities do: the invoice as issued, numbered by the run this caller joined (or an earlier one).
  if (variant === 'batched' && !(await issueFinalizedInvoice(db, finalized)).number) throw new Error(`invoice ${finalized.id} has no number`);
}

/** Invoices per second of `callers` concurrent callers, each finalizing its own subscription's next periods. */
async function phase(db: Database, variant: Variant, subscriptions: readonly Subscription[], callers: number): Promise<{ rate: number; runs: number; cpu: string }> {
  await truncateInvoices(db);
  const runsBefore = numberingRunsStarted(db);
  const cpuBefore = sampleTreeCpu();
  let finalized = 0;
  const startedAt = process.hrtime.bigint();
  const deadline = startedAt + BigInt(PHASE_SECONDS * 1e9);
  await Promise.all(
    subscriptions.slice(0, callers).map(async (subscription) => {
      for (let month = 0; process.hrtime.bigint() < deadline; month += 1) {
        await finalizeStep(db, variant, subscription, month);
        finalized += 1;
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - startedAt) / 1e9;
  // Where the CPU went (this process, its Postgres): at 40 callers on 2 cores the step is CPU-bound.
  const cpuAfter = sampleTreeCpu();
  const cpu = `${describeTreeCpu(cpuBefore, cpuAfter, elapsed)}; ${describeTreeCpuPer(cpuBefore, cpuAfter, finalized, 'invoice')}`;
  if (variant === 'batched') await expectAllNumbered(db);
  return { rate: finalized / elapsed, runs: variant === 'batched' ? (numberingRunsStarted(db) - runsBefore) / finalized : 0, cpu };
}

/** Ours is only worth its figure if every invoice it finalized also got its number. */
async function expectAllNumbered(db: Database): Promise<void> {
  const count = await countUnnumberedInvoices(db);
  if (count !== 0) throw new Error(`${count} finalized invoices were left without a number`);
}

async function seed(db: Database, count: number): Promise<Subscription[]> {
  const [plan] = await insertPlanFixtures(db, [{ code: 'bench', version: 1, name: 'Bench', currency: 'USD', billing_interval: 'P1M', flat_fee: '49.00' }]);
  const customers = await insertCustomerFixtures(
    db,
    Array.from({ length: count }, (_, index) => ({ external_id: `bench-${index}`, name: `Bench ${index}`, currency: 'USD', payment_method: 'pm_sandbox_ok' })),
  );
  return insertSubscriptionFixtures(
    db,
    customers.map((customer) => ({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `subscription:${customer.id}`, start_at: new Date('2031-01-01T00:00:00Z') })),
  );
}

export const invoicingFinalize: Benchmark = {
  name: 'invoicing.finalize',
  group: 'invoicing',
  needsStack: false,
  async run() {
    const database = await startThrowawayDatabase({ tempPrefix: 'meterloop-invoicing-bench-', durable: true, namePrefix: 'meterloop_invoicing_bench', poolMax: POOL_MAX });
    try {
      const { db } = database;
      progress(`invoicing.finalize: Postgres ${database.description}`);
      const subscriptions = await seed(db, Math.max(...CONCURRENCY));
      const best = new Map<string, number>();
      // Variants alternate inside each round, so drift on a shared machine hits all alike; each keeps its best.
      for (let round = 0; round < ROUNDS; round += 1) {
        for (const callers of CONCURRENCY) {
          for (const variant of VARIANTS) {
            const { rate, runs, cpu } = await phase(db, variant, subscriptions, callers);
            const key = `${variant}.${callers}`;
            best.set(key, Math.max(best.get(key) ?? 0, rate));
            const shared = variant === 'batched' ? ` (${runs.toFixed(2)} numbering runs per invoice)` : '';
            progress(`  round ${round + 1}: ${variant} x${callers}: ${rate.toFixed(0)} invoices/s${shared}; ${cpu}`);
          }
        }
      }
      const rate = (variant: Variant, callers: number): number => best.get(`${variant}.${callers}`)!;
      const results: BenchResult[] = [];
      for (const callers of CONCURRENCY) {
        const baseline = { name: `invoicing.finalize.${callers}.no_numbering`, value: rate('no_numbering', callers) };
        results.push({ name: `invoicing.finalize.${callers}`, value: rate('batched', callers), unit: 'invoices/s', baseline });
        results.push({ name: `invoicing.finalize.row_lock.${callers}`, value: rate('row_lock', callers), unit: 'invoices/s', baseline });
      }
      const top = CONCURRENCY[CONCURRENCY.length - 1];
      results.push({
        name: 'invoicing.finalize.scaling',
        value: rate('batched', top) / rate('batched', 1),
        unit: `x (${top} callers / 1)`,
        baseline: { name: 'invoicing.finalize.row_lock.scaling', value: rate('row_lock', top) / rate('row_lock', 1) },
      });
      // What the machine allows: the same step without any numbering, 40 callers over 1. Where one caller already
      // keeps about a core busy (fsync is cheap, the step is CPU), no design of numbering scales past this by much.
      results.push({
        name: 'invoicing.finalize.no_numbering.scaling',
        value: rate('no_numbering', top) / rate('no_numbering', 1),
        unit: `x (${top} callers / 1)`,
        baseline: { name: 'invoicing.finalize.scaling', value: rate('batched', top) / rate('batched', 1) },
      });
      return results;
    } finally {
      await database.stop();
    }
  },
};
