/**
 * What ops see of the API: one JSON log line per request (request-log.ts), Prometheus metrics at /metrics, liveness
 * at /healthz and readiness (Postgres and Temporal answer, and we are not shutting down) at /readyz.
 * See docs/operations.md.
 */
import type { Client } from '@temporalio/client';
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { BusinessState, BusinessStateTable, countBusinessState, pingDatabase } from '../store/business-state';
import type { Database } from '../store/database';
import { ApiProblem } from './problem';
import { checkWorkerPollers } from './worker-pollers';

export type { LogEntry, Logger, LogSink } from '../logging/logger';

/** The request id of a request (the caller's X-Request-Id when well-formed, else a fresh UUID). */
export function requestIdOf(res: Response): string | undefined {
  return res.locals.requestId as string | undefined;
}

export class ApiMetrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly eventsIngested: Counter;
  readonly eventsDeduplicated: Counter;
  readonly eventsRejected: Counter;

  constructor(db: Database, options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.httpDuration = new Histogram({
      name: 'meterloop_http_request_duration_seconds',
      help: 'API request latency by route template, method and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.eventsIngested = new Counter({ name: 'meterloop_usage_events_ingested_total', help: 'usage events stored (new)', registers });
    this.eventsDeduplicated = new Counter({
      name: 'meterloop_usage_events_deduplicated_total',
      help: 'usage events acknowledged as duplicates of stored ones (same customer and event id)',
      registers,
    });
    this.eventsRejected = new Counter({ name: 'meterloop_usage_events_rejected_total', help: 'usage events rejected (validation, limits, or an id already stored with other values)', registers });

    // Business state, read from Postgres at scrape time (one grouped count per table): always current, never drifts.
    // One scrape reads every table once; the gauges below share that snapshot.
    const STATE_GAUGES: Record<string, { help: string; table: BusinessStateTable; labels: readonly string[] }> = {
      meterloop_invoices: { help: 'invoices by kind and status', table: 'invoices', labels: ['kind', 'status'] },
      meterloop_payments: { help: 'payment attempts by outcome (pending, succeeded, failed)', table: 'payments', labels: ['status'] },
      meterloop_subscriptions: { help: 'subscriptions by status (past_due: in dunning)', table: 'subscriptions', labels: ['status'] },
      meterloop_refunds: { help: 'refunds by status', table: 'refunds', labels: ['status'] },
      meterloop_reconciliation_findings: {
        help: 'janitor findings by kind, open or resolved, and whether the janitor repaired them',
        table: 'reconciliation_findings',
        labels: ['kind', 'status', 'repaired'],
      },
    };
    let snapshot: { at: number; state: Promise<BusinessState | undefined> } | undefined;
    const readState = (): Promise<BusinessState | undefined> => {
      if (!snapshot || Date.now() - snapshot.at > 1_000) {
        snapshot = { at: Date.now(), state: countBusinessState(db).catch(() => undefined) };
      }
      return snapshot.state;
    };
    new Gauge({
      name: 'meterloop_metrics_database_up',
      help: '1 when this scrape could read the business state from Postgres',
      registers,
      async collect() {
        this.set((await readState()) ? 1 : 0);
      },
    });
    for (const [name, gauge] of Object.entries(STATE_GAUGES)) {
      const labelNames = [...gauge.labels];
      new Gauge({
        name,
        help: gauge.help,
        labelNames,
        registers,
        async collect() {
          const state = await readState();
          this.reset();
          for (const { labels, count } of state?.[gauge.table] ?? []) this.set(labels, count);
        },
      });
    }
  }

  /** For routes/events.ts: what one ingestion request did. */
  recordIngestion(outcome: { accepted: number; duplicates: number; rejected: number }): void {
    this.eventsIngested.inc(outcome.accepted);
    this.eventsDeduplicated.inc(outcome.duplicates);
    this.eventsRejected.inc(outcome.rejected);
  }
}

/** Before the problem handler: keeps unexpected errors (not problems we raise on purpose) for the log line. */
export const captureErrors: ErrorRequestHandler = (error: unknown, _req, res, next) => {
  const expected = error instanceof ApiProblem || (error as { name?: string })?.name === 'ZodError' || typeof (error as { type?: string })?.type === 'string';
  if (!expected) res.locals.error = error instanceof Error ? error : new Error(String(error));
  next(error);
};

export interface ReadinessCheck {
  readonly ok: boolean;
  readonly error?: string;
  readonly duration_ms: number;
}

async function timed(probe: () => Promise<unknown>, timeoutMs: number): Promise<ReadinessCheck> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      ...(Number.isFinite(timeoutMs)
        ? [
            new Promise((_resolve, reject) => {
              timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
            }),
          ]
        : []),
    ]);
    return { ok: true, duration_ms: Date.now() - started };
  } catch (error) {
    return { ok: false, error: (error as Error).message ?? String(error), duration_ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

export interface HealthOptions {
  readonly db: Database;
  readonly temporal: Client;
  /** How long each dependency may take to answer (default 2 s for Postgres, 1 s for Temporal's gRPC deadline). */
  readonly timeoutMs?: { readonly postgres?: number; readonly temporal?: number };
  /** True once the process is shutting down: /readyz answers 503 so load balancers stop sending requests. */
  readonly draining?: () => boolean;
  /**
   * No worker polling the billing task queue makes /readyz 503 when true (READINESS_REQUIRE_WORKER=true); by default
   * it stays 200 with `checks.worker` failing and a `warnings` entry: the API still serves ingestion and reads.
   */
  readonly requireWorker?: boolean;
}

export function healthHandlers(options: HealthOptions): { liveness: RequestHandler; readiness: RequestHandler } {
  const postgresTimeoutMs = options.timeoutMs?.postgres ?? 2_000;
  const temporalTimeoutMs = options.timeoutMs?.temporal ?? 1_000;
  return {
    liveness: (_req, res) => {
      res.json({ status: 'ok' });
    },
    readiness: async (_req, res) => {
      const connection = options.temporal.connection;
      const [postgres, temporal, worker] = await Promise.all([
        timed(() => pingDatabase(options.db), postgresTimeoutMs),
        // No race here: the gRPC deadline ends the call. Answering early would leave the client's retry timers
        // running, and closing the connection under them (at shutdown) throws; this way the request settles first.
        timed(() => connection.withDeadline(Date.now() + temporalTimeoutMs, () => connection.workflowService.getSystemInfo({})), Infinity),
        checkWorkerPollers({ temporal: options.temporal, timeoutMs: temporalTimeoutMs }),
      ]);
      const draining = options.draining?.() ?? false;
      const checks = { postgres, temporal, worker, ...(draining ? { shutdown: { ok: false, error: 'shutting down', duration_ms: 0 } } : {}) };
      const workerRequired = options.requireWorker ?? process.env.READINESS_REQUIRE_WORKER === 'true';
      if (postgres.ok && temporal.ok && !draining && (worker.ok || !workerRequired)) {
        res.json({ status: 'ready', checks, ...(worker.ok ? {} : { warnings: [`worker: ${worker.error}`] }) });
        return;
      }
      const down = Object.entries(checks)
        .filter(([name, check]) => !check.ok && (name !== 'worker' || workerRequired))
        .map(([name]) => name);
      res
        .status(503)
        .type('application/problem+json')
        .json({
          type: 'https://meterloop.dev/problems/not_ready',
          title: 'not ready',
          status: 503,
          code: 'not_ready',
          detail: `not ready: ${down.join(', ')}`,
          checks,
        });
    },
  };
}

export function metricsHandler(metrics: ApiMetrics): RequestHandler {
  return async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  };
}
