/**
 * The stack the HTTP benchmarks run against: a real Postgres with durable commits (fsync and
 * synchronous_commit at their defaults, since a committed event must survive a crash), the migrated schema,
 * a seeded catalog, and the real express app on 127.0.0.1.
 *
 * Temporal: the API needs a `Client` object for subscription routes only; ingestion reaches Temporal only
 * through a usage-signal coalescer, which we do not pass. `Connection.lazy` builds a connection that dials
 * nothing until first used, so no Temporal server is needed (port 1 makes any accidental use fail loudly).
 */
import { Client, Connection } from '@temporalio/client';
import { createWriteStream } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from '../api/app';
import { createApiKey } from '../store/api-keys';
import {
  checkpoint,
  insertCustomerFixtures,
  insertMetricFixtures,
  insertPlanFixtures,
  insertSubscriptionFixtures,
  insertUsageClosureFixtures,
  truncateUsageEvents,
} from '../store/bulk-fixtures';
import type { Database } from '../store/database';
import { startThrowawayDatabase } from '../store/throwaway-database';
import { EVENT_TYPE } from './events';
import { progress } from './report';

export const CUSTOMER_COUNT = 2_000;

export interface BenchStack {
  readonly db: Database;
  /** e.g. http://127.0.0.1:41234 */
  readonly baseUrl: string;
  /** An API key of the `app` role (the one that may POST /v1/events). */
  readonly apiKey: string;
  /** External ids of the seeded customers, as API clients know them. */
  readonly customerExternalIds: readonly string[];
  /** Our customer ids, in the same order (for inserts that skip the API). */
  readonly customerIds: readonly string[];
  /** Where Postgres came from, for the record. */
  readonly postgres: string;
  /** Empties usage_events between measured phases so each starts from the same table and index sizes. */
  resetUsageEvents(): Promise<void>;
  stop(): Promise<void>;
}

export async function startBenchStack(): Promise<BenchStack> {
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) {
      await step().catch((error: unknown) => progress(`cleanup failed: ${String(error)}`));
    }
  };
  try {
    // The benchmark truncates tables, so it never runs in the database DATABASE_URL names: always a fresh one.
    const database = await startThrowawayDatabase({ tempPrefix: 'meterloop-bench-', durable: true, namePrefix: 'meterloop_bench' });
    cleanups.push(() => database.stop());
    const { db, description } = database;
    const { externalIds, ids } = await seedCatalog(db);
    const { key: apiKey } = await createApiKey(db, { name: 'bench', role: 'app' });

    const connection = Connection.lazy({ address: '127.0.0.1:1' });
    const temporal = new Client({ connection });
    // The request log is written as in production (a JSON line per request), but to /dev/null: stdout is ours.
    const requestLog = createWriteStream('/dev/null');
    cleanups.push(() => new Promise<void>((resolve) => requestLog.end(resolve)));
    const app = createApp({
      db,
      temporal,
      log: (entry) => requestLog.write(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`),
      // The limiter runs (its cost is measured) but never throttles: the benchmark asks what the API can take.
      rateLimit: { perSecond: 1e9, burst: 1e9 },
    });
    const server: Server = await new Promise((resolve, reject) => {
      const listening = app.listen(0, '127.0.0.1', () => resolve(listening)).on('error', reject);
    });
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    progress(`stack ready: ${description}, API at ${baseUrl}, ${externalIds.length} customers`);
    return {
      db,
      baseUrl,
      apiKey,
      customerExternalIds: externalIds,
      customerIds: ids,
      postgres: description,
      async resetUsageEvents() {
        await truncateUsageEvents(db);
        // Start every phase from a clean WAL position so a checkpoint does not land in one phase only. Needs
        // superuser or pg_checkpoint, which a DATABASE_URL role may lack; the phases then just run without it.
        await checkpoint(db).catch(() => undefined);
      },
      stop: cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

async function seedCatalog(db: Database): Promise<{ externalIds: string[]; ids: string[] }> {
  const externalIds = Array.from({ length: CUSTOMER_COUNT }, (_, index) => `bench-customer-${String(index).padStart(5, '0')}`);
  const rows = await insertCustomerFixtures(
    db,
    externalIds.map((externalId) => ({ external_id: externalId, name: `Bench ${externalId}`, currency: 'USD' })),
  );
  const idByExternalId = new Map(rows.map((row) => [row.external_id, row.id]));
  // Two metrics read the same event type, so validation checks a numeric property and a filter per event.
  await insertMetricFixtures(db, [
    { code: 'tokens', name: 'Tokens', event_type: EVENT_TYPE, aggregation: 'sum', property: 'tokens' },
    { code: 'requests', name: 'Requests', event_type: EVENT_TYPE, aggregation: 'count', property: null },
    { code: 'gpu_seconds', name: 'GPU seconds', event_type: 'gpu.job', aggregation: 'sum', property: 'seconds' },
  ]);
  const ids = externalIds.map((externalId) => idByExternalId.get(externalId)!);
  await seedClosedPeriods(db, ids);
  return { externalIds, ids };
}

/**
 * Steady state, not day one: every customer has a subscription with two closed monthly usage periods, so the
 * insert's "late event?" check probes a populated index (our events are recent, so none is late).
 */
async function seedClosedPeriods(db: Database, customerIds: readonly string[]): Promise<void> {
  const [plan] = await insertPlanFixtures(db, [{ code: 'bench', version: 1, name: 'Bench', currency: 'USD', billing_interval: 'P1M' }]);
  const now = Date.now();
  const month = 30 * 24 * 3600_000;
  const subscriptions = await insertSubscriptionFixtures(
    db,
    customerIds.map((customerId) => ({
      customer_id: customerId,
      plan_id: plan.id,
      status: 'active',
      workflow_id: `subscription:bench-${customerId}`,
      start_at: new Date(now - 3 * month),
      current_period_start: new Date(now - month),
      current_period_end: new Date(now + month),
    })),
  );
  await insertUsageClosureFixtures(
    db,
    subscriptions.flatMap((subscription) =>
      [3, 2].map((monthsAgo) => ({
        subscription_id: subscription.id,
        customer_id: subscription.customer_id,
        period_start: new Date(now - monthsAgo * month),
        period_end: new Date(now - (monthsAgo - 1) * month),
        totals: {},
        event_count: 0,
      })),
    ),
  );
}
