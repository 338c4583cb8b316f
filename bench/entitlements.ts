/**
 * Real-time reads through the real HTTP API (issue 12): they read running totals (store/rollups.ts), so their
 * cost must not grow with the number of events in the period.
 *
 * - `entitlements.check`: requests/s of GET /v1/customers/:id/entitlements/api_calls (an `app` key) for a customer
 *   with 1,000,000 events in the current period, beside the bare route (`entitlements.check.bare_route`: same
 *   app, same middleware and key, a handler with no lookups) measured in the same run, in interleaved slices
 *   (ABBA). Also its p99 and the bare route's. Goal: p99 under 5 ms, at least half the bare route's rate.
 * - `usage.preview.<size>`: p99 of GET /v1/subscriptions/:id/usage at 10k, 100k and 1M events in the period
 *   (goal under 10 ms at each size), and requests/s.
 *
 * Latency and throughput are measured apart: a p99 is one caller's (an app asking before each call waits for its
 * answer: one request in flight), the rates have BENCH_ENTITLEMENT_CONCURRENCY in flight. With 8 in flight on two
 * cores each request also waits for the 7 others, so the p99 under load (`.p99_at_<n>`) mostly measures queueing.
 *
 * Fixtures go in by generate_series (store/bulk-fixtures.ts), around the API; the first read of each window
 * seeds its totals from those rows (one scan, in the warm-up), as a deployment's existing data would be.
 * Env: BENCH_ENTITLEMENT_REQUESTS (per slice, default 4000), BENCH_ENTITLEMENT_CONCURRENCY (default 8),
 * BENCH_PREVIEW_SIZES (default "10000,100000,1000000").
 */
import http from 'node:http';
import { createApp } from '../api/app';
import { declareRoutes } from '../api/route-declarations';
import { Client, Connection } from '@temporalio/client';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  insertCustomerFixtures,
  insertMetricFixtures,
  insertPlanFixtures,
  insertSubscriptionFixtures,
  insertUsageEventSeries,
} from '../store/bulk-fixtures';
import { Benchmark, BenchResult, percentile, progress } from './report';
import type { BenchStack } from './stack';

const REQUESTS = envInt('BENCH_ENTITLEMENT_REQUESTS', 4_000);
const CONCURRENCY = envInt('BENCH_ENTITLEMENT_CONCURRENCY', 8);
const SIZES = (process.env.BENCH_PREVIEW_SIZES ?? '10000,100000,1000000').split(',').map(Number);
const EVENT_TYPE = 'bench.call';
const SLICES = 4;
/** Requests per slice for the one-caller latency (two slices per side, ABBA). */
const LATENCY_REQUESTS = envInt('BENCH_ENTITLEMENT_LATENCY_REQUESTS', 1_000);

interface Fixture {
  readonly size: number;
  readonly customerId: string;
  readonly subscriptionId: string;
}

export const entitlementsCheck: Benchmark = {
  name: 'entitlements.check',
  group: 'entitlements',
  needsStack: true,
  async run({ stack }) {
    const s = stack!;
    const fixtures = await seedFixtures(s);
    const server = await startApp(s);
    try {
      const results: BenchResult[] = [];
      const million = fixtures.find((fixture) => fixture.size === 1_000_000) ?? fixtures[fixtures.length - 1];
      const checkPath = `/v1/customers/${million.customerId}/entitlements/api_calls`;
      // Warm-up: JIT, pools, key cache, and the first read that seeds each window's totals.
      for (const fixture of fixtures) {
        const started = Date.now();
        await load(server.url, s.apiKey, `/v1/subscriptions/${fixture.subscriptionId}/usage`, 1, 1);
        progress(`  first read of ${fixture.size} events (seeds the totals): ${Date.now() - started} ms`);
      }
      await load(server.url, s.apiKey, checkPath, 500, CONCURRENCY);
      await load(server.url, s.apiKey, '/bench-bare/ping', 500, CONCURRENCY);
      const answer = await getJson(server.url, s.apiKey, checkPath);
      progress(`  entitlement answer: ${JSON.stringify(answer)}`);
      if ((answer as { usage?: string }).usage !== String(million.size)) throw new Error(`expected usage ${million.size}, got ${JSON.stringify(answer)}`);

      const ours = { seconds: 0, latencies: [] as number[] };
      const bare = { seconds: 0, latencies: [] as number[] };
      for (let slice = 1; slice <= SLICES; slice += 1) {
        for (const side of slice % 2 === 1 ? (['bare', 'ours'] as const) : (['ours', 'bare'] as const)) {
          const result = await load(server.url, s.apiKey, side === 'ours' ? checkPath : '/bench-bare/ping', REQUESTS, CONCURRENCY);
          const target = side === 'ours' ? ours : bare;
          target.seconds += result.seconds;
          target.latencies.push(...result.latencies);
          progress(`  slice ${slice} ${side}: ${Math.round(REQUESTS / result.seconds)} requests/s, p99 ${p99(result.latencies).toFixed(2)} ms`);
        }
      }
      const total = REQUESTS * SLICES;
      const oneCaller = { ours: [] as number[], bare: [] as number[] };
      for (const side of ['bare', 'ours', 'ours', 'bare'] as const) {
        oneCaller[side].push(...(await load(server.url, s.apiKey, side === 'ours' ? checkPath : '/bench-bare/ping', LATENCY_REQUESTS, 1)).latencies);
      }
      progress(`  one caller: p99 ${p99(oneCaller.ours).toFixed(2)} ms (bare route ${p99(oneCaller.bare).toFixed(2)} ms)`);
      results.push(
        { name: 'entitlements.check', value: total / ours.seconds, unit: 'requests/s', baseline: { name: 'entitlements.check.bare_route', value: total / bare.seconds } },
        { name: 'entitlements.check.p99', value: p99(oneCaller.ours), unit: 'ms', baseline: { name: 'entitlements.check.bare_route.p99', value: p99(oneCaller.bare) } },
        { name: `entitlements.check.p99_at_${CONCURRENCY}`, value: p99(ours.latencies), unit: 'ms', baseline: { name: `entitlements.check.bare_route.p99_at_${CONCURRENCY}`, value: p99(bare.latencies) } },
      );

      for (const fixture of fixtures) {
        const path = `/v1/subscriptions/${fixture.subscriptionId}/usage`;
        const loaded = await load(server.url, s.apiKey, path, REQUESTS, CONCURRENCY);
        const alone = await load(server.url, s.apiKey, path, LATENCY_REQUESTS, 1);
        const label = fixture.size >= 1_000_000 ? `${fixture.size / 1_000_000}m` : `${fixture.size / 1_000}k`;
        progress(`  usage.preview.${label}: ${Math.round(REQUESTS / loaded.seconds)} requests/s, p99 ${p99(alone.latencies).toFixed(2)} ms alone, ${p99(loaded.latencies).toFixed(2)} ms at ${CONCURRENCY}`);
        results.push(
          { name: `usage.preview.${label}.p99`, value: p99(alone.latencies), unit: 'ms' },
          { name: `usage.preview.${label}.p99_at_${CONCURRENCY}`, value: p99(loaded.latencies), unit: 'ms' },
          { name: `usage.preview.${label}`, value: REQUESTS / loaded.seconds, unit: 'requests/s' },
        );
      }
      return results;
    } finally {
      await server.close();
    }
  },
};

async function seedFixtures(stack: BenchStack): Promise<Fixture[]> {
  await insertMetricFixtures(stack.db, [
    { code: 'bench_calls', name: 'Calls', event_type: EVENT_TYPE, aggregation: 'count', property: null },
    { code: 'bench_call_tokens', name: 'Call tokens', event_type: EVENT_TYPE, aggregation: 'sum', property: 'tokens' },
  ]);
  const [plan] = await insertPlanFixtures(stack.db, [
    {
      code: 'bench-entitled',
      version: 1,
      name: 'Bench entitled',
      currency: 'USD',
      billing_interval: 'P1M',
      charges: [
        { metricCode: 'bench_calls', price: { model: 'per_unit', unitPrice: '0.001' } },
        { metricCode: 'bench_call_tokens', price: { model: 'per_unit', unitPrice: '0.00001' } },
      ],
      settings: { creditBucket: '5.00', features: [{ code: 'api_calls', kind: 'metered', metricCode: 'bench_calls', limit: null }] },
    },
  ]);
  const now = Date.now();
  const customers = await insertCustomerFixtures(
    stack.db,
    SIZES.map((size) => ({ external_id: `bench-entitled-${size}`, name: `Entitled ${size}`, currency: 'USD' })),
  );
  const fixtures: Fixture[] = [];
  for (const [index, size] of SIZES.entries()) {
    const customerId = customers[index].id;
    const [subscription] = await insertSubscriptionFixtures(stack.db, [
      {
        customer_id: customerId,
        plan_id: plan.id,
        status: 'active',
        workflow_id: `direct:bench-entitled-${size}`,
        start_at: new Date(now - 86_400_000),
        current_period_start: new Date(now - 86_400_000),
        current_period_end: new Date(now + 29 * 86_400_000),
      },
    ]);
    const started = Date.now();
    // In chunks, so one statement's memory stays modest.
    for (let done = 0; done < size; done += 250_000) {
      await insertUsageEventSeries(stack.db, { customerId, eventType: EVENT_TYPE, idPrefix: `e${done}-`, count: Math.min(250_000, size - done), occurredAt: new Date(now - 3_600_000) });
    }
    progress(`  ${size} events for ${customerId} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    fixtures.push({ size, customerId, subscriptionId: subscription.id });
  }
  await stack.db.raw('ANALYZE');
  return fixtures;
}

/** The app again, on the stack's database, with one extra route that answers without any lookup. */
async function startApp(stack: BenchStack): Promise<{ url: string; close(): Promise<void> }> {
  const bare = declareRoutes();
  bare.get('/ping', { allow: ['app'] }, (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json({ feature: 'ping', has_access: true, usage: null, limit: null, balance: null, resets_at: null });
  });
  const temporal = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
  const app = createApp({ db: stack.db, temporal, log: () => undefined, rateLimit: { perSecond: 1e9, burst: 1e9 }, extraRouters: [{ path: '/bench-bare', router: bare.router }] });
  const server: Server = await new Promise((resolve, reject) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening)).on('error', reject);
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function get(baseUrl: string, apiKey: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${baseUrl}${path}`, { agent, headers: { authorization: `Bearer ${apiKey}` } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    request.on('error', reject);
  });
}

async function getJson(baseUrl: string, apiKey: string, path: string): Promise<unknown> {
  const response = await get(baseUrl, apiKey, path);
  if (response.status !== 200) throw new Error(`GET ${path}: ${response.status} ${response.body}`);
  return JSON.parse(response.body) as unknown;
}

/** `count` GETs with `concurrency` in flight; every answer must be 200. */
async function load(baseUrl: string, apiKey: string, path: string, count: number, concurrency: number): Promise<{ seconds: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next += 1;
      const started = process.hrtime.bigint();
      const response = await get(baseUrl, apiKey, path);
      latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (response.status !== 200) throw new Error(`GET ${path}: ${response.status} ${response.body.slice(0, 300)}`);
    }
  };
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, latencies };
}

function p99(values: readonly number[]): number {
  return percentile(Float64Array.from(values).sort(), 99);
}

function envInt(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed <= 0) throw new Error(`${name} must be a positive integer, got ${value}`);
  return parsed;
}
