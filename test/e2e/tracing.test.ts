/**
 * Traces across the stack (issue 13, point 3): the API and worker processes as they run in production
 * (`api/main.ts`, `worker/main.ts`), with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a collector in this test, over
 * the Temporal dev server and a real Postgres. One plan change is one trace: the HTTP request, the Temporal
 * client's update, the workflow's handler, the activity that wrote the proration invoice and its Postgres queries.
 *
 * Real processes rather than in-process code: OpenTelemetry instruments http and pg by hooking Node's `require`,
 * which jest's own module loader bypasses. The collector keeps the spans in memory.
 *
 * Usage events reach a workflow through a coalesced signal (many requests, one signal), so an event's request
 * cannot be the parent of the invoice that bills it; the plan change is the request whose effect is one trace.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { RunningDevServer, startDevServer } from '../../scripts/temporal-servers';
import type { Database } from '../../store/database';
import { freePort } from '../../store/free-port';
import { startTracing, tracingRequested } from '../../tracing';
import { SEARCH_ATTRIBUTE_REGISTRATIONS } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabaseWithUrl } from '../support/database';
import { eventually } from '../support/eventually';
import { WORKER_NODE_ARGS } from '../../worker/launch';

/** One span as OTLP/JSON carries it (ids in hex). */
interface CollectedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  service: string;
  attributes: Record<string, unknown>;
}

const root = path.resolve(__dirname, '../..');
const spans: CollectedSpan[] = [];
let collector: Server;
let db: Database;
let devServer: RunningDevServer;
const processes: ChildProcess[] = [];
let apiUrl: string;
let authorization: string;

/** An OTLP/HTTP (JSON) trace receiver: what a collector such as the OpenTelemetry Collector or Jaeger listens with. */
async function startCollector(): Promise<Server> {
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpTraces;
      for (const resourceSpans of body.resourceSpans ?? []) {
        const service = attributesOf(resourceSpans.resource?.attributes)['service.name'] as string;
        for (const scope of resourceSpans.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) {
            spans.push({ traceId: span.traceId, spanId: span.spanId, parentSpanId: span.parentSpanId || undefined, name: span.name, service, attributes: attributesOf(span.attributes) });
          }
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

interface OtlpAttribute { key: string; value: Record<string, unknown> }
interface OtlpTraces {
  resourceSpans?: { resource?: { attributes?: OtlpAttribute[] }; scopeSpans?: { spans?: { traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: OtlpAttribute[] }[] }[] }[];
}
const attributesOf = (attributes: OtlpAttribute[] = []): Record<string, unknown> => Object.fromEntries(attributes.map(({ key, value }) => [key, Object.values(value)[0]]));

function startProcess(entry: string, env: Record<string, string>): ChildProcess {
  // node with tsx's loader (not the tsx CLI, which would leave its child running when this one is stopped).
  const launch = entry.startsWith('worker/') ? WORKER_NODE_ARGS : [];
  const child = spawn(process.execPath, [...launch, '--import', 'tsx', path.join(root, entry)], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  // The worker's SDK logs (bundler, state changes) go to stderr: pass on only what reports a failure.
  child.stderr?.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (/error|fatal/i.test(line)) process.stderr.write(`[${entry}] ${line}\n`);
  });
  processes.push(child);
  return child;
}

beforeAll(async () => {
  let url: string;
  [{ db, url }, devServer, collector] = await Promise.all([
    createTestDatabaseWithUrl(),
    startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_REGISTRATIONS, log: () => undefined }),
    startCollector(),
  ]);
  const apiPort = await freePort();
  apiUrl = `http://127.0.0.1:${apiPort}`;
  const common = {
    DATABASE_URL: url,
    TEMPORAL_ADDRESS: devServer.address,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
    OTEL_BSP_SCHEDULE_DELAY: '200',
    METERLOOP_LOG: 'errors',
  };
  startProcess('worker/main.ts', { ...common, WORKER_METRICS_ADDRESS: 'off', JANITOR_SCHEDULE: 'off', METERLOOP_OUTBOX_DISPATCHER: 'off' });
  startProcess('api/main.ts', { ...common, PORT: String(apiPort), HOST: '127.0.0.1' });
  authorization = (await createTestApiKey(db, 'admin')).headers.authorization;
  await eventually(() => fetch(`${apiUrl}/healthz`).then((response) => response.ok, () => false), 'the API process to listen', { timeoutMs: 60_000 });
}, 180_000);

afterAll(async () => {
  await Promise.all(processes.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve(null) : (child.once('exit', resolve), child.kill('SIGTERM'))))));
  await new Promise((resolve) => collector?.close(resolve));
  await devServer?.stop();
  await db?.destroy();
}, 60_000);

test('tracing is off without an OTLP endpoint: no plugin, nothing loaded', () => {
  expect(tracingRequested({}, {})).toBe(false);
  expect(tracingRequested({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe(true);
  if (!process.env.OTEL_EXPORTER_OTLP_ENDPOINT) expect(startTracing({ serviceName: 'off' })).toMatchObject({ enabled: false, temporalPlugins: [] });
});

test('a plan change is one trace: POST -> Temporal update -> workflow -> proration invoice activity -> its pg queries', async () => {
  const post = async (route: string, body: unknown): Promise<{ id: string }> => {
    const response = await fetch(`${apiUrl}${route}`, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (response.status >= 300) throw new Error(`${route}: ${response.status} ${await response.text()}`);
    return (await response.json()) as { id: string };
  };
  await post('/v1/plans', { code: 'trace-basic', name: 'Basic', currency: 'USD', billing_interval: 'P1M', flat_fee: '10.00' });
  await post('/v1/plans', { code: 'trace-pro', name: 'Pro', currency: 'USD', billing_interval: 'P1M', flat_fee: '20.00' });
  const customer = await post('/v1/customers', { external_id: 'trace-acme', name: 'Trace Acme', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await post('/v1/subscriptions', { customer_id: customer.id, plan_code: 'trace-basic' });
  // The worker bundles the workflows from source first: allow for it.
  await eventually(async () => (await db('invoices').where({ subscription_id: subscription.id })).length === 1, 'the first period invoice', { timeoutMs: 90_000 });

  await post(`/v1/subscriptions/${subscription.id}/plan-change`, { plan_code: 'trace-pro', effective: 'immediate' });
  const request = await eventually(
    async () => spans.find((span) => span.name === 'POST /v1/subscriptions/:id/plan-change'),
    () => `the plan change's request span; spans so far: ${[...new Set(spans.map((span) => span.name))].join(', ')}`,
  );
  // The activity's span arrives from the worker's exporter, the pg spans under it a moment later.
  const inTrace = (): CollectedSpan[] => spans.filter((span) => span.traceId === request.traceId);
  const activity = await eventually(async () => inTrace().find((span) => span.name === 'RunActivity:createProrationInvoice'), () => `the proration activity's span; trace so far: ${inTrace().map((span) => span.name).join(', ')}`);
  const activityQueries = (): CollectedSpan[] => inTrace().filter((span) => span.attributes['db.system'] === 'postgresql' && ancestors(span, inTrace()).includes(activity));
  await eventually(async () => activityQueries().some((span) => /insert into "?invoices"? /i.test(String(span.attributes['db.statement']))), () => `the invoice insert under the activity; its queries: ${activityQueries().map((span) => span.attributes['db.statement']).join(' | ')}`);

  const trace = inTrace();
  // Each step of the chain is in the request's trace and descends from the request's span.
  const chain = ['StartWorkflowUpdate:changePlan', 'HandleUpdate:changePlan', 'StartActivity:createProrationInvoice', 'RunActivity:createProrationInvoice'];
  const steps = chain.map((name) => trace.find((span) => span.name === name));
  expect(chain.filter((_, index) => !steps[index])).toEqual([]);
  for (const step of steps) expect(ancestors(step!, trace).map((span) => span.name)).toContain(request.name);
  // From the API process to the worker's: the update leaves one service and the activity runs in the other.
  expect([request.service, activity.service]).toEqual(['meterloop-api', 'meterloop-worker']);
  // The API's own queries of that request (the plan lookup) are in the trace too.
  expect(trace.some((span) => span.service === 'meterloop-api' && span.attributes['db.system'] === 'postgresql')).toBe(true);
}, 180_000);

/** The spans above `span` in its trace, nearest first. */
function ancestors(span: CollectedSpan, trace: CollectedSpan[]): CollectedSpan[] {
  const byId = new Map(trace.map((each) => [each.spanId, each]));
  const chain: CollectedSpan[] = [];
  for (let parent = span.parentSpanId ? byId.get(span.parentSpanId) : undefined; parent; parent = parent.parentSpanId ? byId.get(parent.parentSpanId) : undefined) chain.push(parent);
  return chain;
}
