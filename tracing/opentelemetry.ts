/**
 * The OpenTelemetry side of tracing/index.ts, loaded only when tracing is on: a tracer provider for this process,
 * the http and pg instrumentations, and Temporal's plugin (client, workflow and activity interceptors; workflow
 * spans leave the sandbox through a sink into the same span processor).
 */
import { context, propagation, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, SimpleSpanProcessor, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { OpenTelemetryPlugin } from '@temporalio/interceptors-opentelemetry';
import type { IncomingMessage } from 'node:http';
import type { Tracing, TracingOptions } from './index';

export function startOpenTelemetry(options: TracingOptions): Tracing {
  const resource = new Resource({ 'service.name': process.env.OTEL_SERVICE_NAME ?? options.serviceName });
  // The OTLP exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and _HEADERS, _TRACES_ENDPOINT) itself.
  const exporter = options.exporter ?? new OTLPTraceExporter();
  const spanProcessor: SpanProcessor = options.exportImmediately ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter);
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  provider.register(); // AsyncLocalStorage context, W3C trace-context propagation

  const unregister = registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({
        // Probes and scrapes would bury the requests that matter.
        ignoreIncomingRequestHook: (request) => /^\/(healthz|readyz|metrics)\b/.test(request.url ?? ''),
        // Outgoing calls of this process are the OTLP export itself and webhooks; only the latter are worth a span,
        // and an exporter that traced its own requests would never stop.
        ignoreOutgoingRequestHook: (request) => isOtlpExport(request.path),
        // Name the server span after the route that served it ("POST /v1/events"), as ops search for it.
        applyCustomAttributesOnSpan: (span, request) => {
          const route = routeOf(request as IncomingMessage);
          if (route && 'method' in request) {
            span.updateName(`${request.method} ${route}`);
            span.setAttribute('http.route', route);
          }
        },
      }),
      new PgInstrumentation({ requireParentSpan: true }),
    ],
  });

  const plugin = new OpenTelemetryPlugin({ resource, spanProcessor });
  return {
    enabled: true,
    temporalPlugins: [plugin],
    async shutdown() {
      unregister();
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

function isOtlpExport(path: string | null | undefined): boolean {
  return typeof path === 'string' && path.endsWith('/v1/traces');
}

/** The matched route of an express request ("/v1/subscriptions/:id/plan-change"), or none when no route matched. */
function routeOf(request: IncomingMessage & { baseUrl?: string; route?: { path?: unknown }; originalUrl?: string }): string | undefined {
  // Only the route pattern: a raw path carries ids, and span names must stay few.
  return request.route && typeof request.route.path === 'string' ? `${request.baseUrl ?? ''}${request.route.path}` : undefined;
}
