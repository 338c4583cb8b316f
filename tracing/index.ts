/**
 * Traces across the stack: the HTTP request, the Temporal client call it makes, the workflow, its activities and
 * their Postgres queries, as one OpenTelemetry trace. Started first by api/main.ts, worker/main.ts and
 * scripts/start.ts.
 *
 * Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (or a test passes an exporter): then nothing of OpenTelemetry is
 * even loaded, no instrumentation patches a module, and the Temporal client and worker get no plugin.
 */
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { ClientPlugin } from '@temporalio/client';
import type { WorkerPlugin } from '@temporalio/worker';

export interface TracingOptions {
  /** `service.name` of this process's spans (OTEL_SERVICE_NAME overrides it). */
  readonly serviceName: string;
  /** Where spans go instead of OTLP (tests pass an InMemorySpanExporter). */
  readonly exporter?: SpanExporter;
  /** Export each span as it ends (tests) instead of in batches. */
  readonly exportImmediately?: boolean;
}

export interface Tracing {
  readonly enabled: boolean;
  /** For `new Client({ plugins })` and `Worker.create({ plugins })` (and the bundler): Temporal's OpenTelemetry plugin, or none. */
  readonly temporalPlugins: Array<ClientPlugin & WorkerPlugin>;
  /** Sends the spans still buffered; call once at shutdown. */
  shutdown(): Promise<void>;
}

const TRACING_OFF: Tracing = { enabled: false, temporalPlugins: [], shutdown: async () => undefined };

/** Whether this process would trace: an exporter is given or OTEL_EXPORTER_OTLP_ENDPOINT is set. */
export function tracingRequested(options: Pick<TracingOptions, 'exporter'> = {}, env: NodeJS.ProcessEnv = process.env): boolean {
  return options.exporter !== undefined || Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Starts tracing for this process, or does nothing when it is not requested. Call it before the API listens and
 * before the first Postgres connection: the instrumentations patch `http` and `pg` as they are used.
 */
export function startTracing(options: TracingOptions): Tracing {
  if (!tracingRequested(options)) return TRACING_OFF;
  // Loaded only when tracing is on, so a process without an OTLP endpoint never pays for the SDK.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sdk = require('./opentelemetry') as typeof import('./opentelemetry');
  return sdk.startOpenTelemetry(options);
}
