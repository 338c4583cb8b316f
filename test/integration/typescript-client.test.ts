/**
 * The TypeScript client (clients/typescript) against a real HTTP server on 127.0.0.1: every POST carries an
 * Idempotency-Key that all retries of one call reuse, 503 and 429 are retried as Retry-After asks and no more
 * often than the bound, and its generated types match the committed OpenAPI document.
 */
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createMeterloopClient, retryAfterMs } from '../../clients/typescript/src';

interface Seen {
  method: string;
  url: string;
  idempotencyKey: string | undefined;
  authorization: string | undefined;
  body: string;
  at: number;
}

/** Answers each request with the next planned answer (the last one repeats), recording what arrived. */
async function plannedServer(plan: { status: number; headers?: Record<string, string>; body?: unknown }[]): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, idempotencyKey: req.headers['idempotency-key'] as string | undefined, authorization: req.headers.authorization, body, at: Date.now() });
      const answer = plan[Math.min(seen.length - 1, plan.length - 1)];
      const problem = answer.status >= 400;
      res.writeHead(answer.status, { 'content-type': problem ? 'application/problem+json' : 'application/json', ...answer.headers });
      res.end(JSON.stringify(answer.body ?? (problem ? { code: answer.status === 429 ? 'rate_limited' : 'temporal_unavailable', status: answer.status } : {})));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const customer = { id: '6f1c2a4e-8d3b-4c5a-9e7f-1a2b3c4d5e6f', external_id: 'acme', name: 'Acme', email: null, currency: 'USD', payment_method: null, created_at: null };
const body = { external_id: 'acme', name: 'Acme', currency: 'USD' };

test('a POST gets an Idempotency-Key; a 503 with Retry-After is waited for and retried with the same key and body', async () => {
  const server = await plannedServer([{ status: 503, headers: { 'retry-after': '1' } }, { status: 503, headers: { 'retry-after': '1' } }, { status: 201, body: customer }]);
  try {
    const client = createMeterloopClient({ baseUrl: server.url, apiKey: 'ml_test_secret' });
    const started = Date.now();
    const { data, response } = await client.POST('/v1/customers', { body });
    expect(response.status).toBe(201);
    expect(data?.external_id).toBe('acme');
    expect(server.seen).toHaveLength(3);
    const keys = new Set(server.seen.map((request) => request.idempotencyKey));
    expect(keys.size).toBe(1);
    expect([...keys][0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(server.seen.map((request) => JSON.parse(request.body))).toEqual([body, body, body]);
    expect(server.seen.every((request) => request.authorization === 'Bearer ml_test_secret')).toBe(true);
    // Two waits of one second each, as asked.
    expect(server.seen[1].at - server.seen[0].at).toBeGreaterThanOrEqual(950);
    expect(server.seen[2].at - server.seen[1].at).toBeGreaterThanOrEqual(950);
    expect(Date.now() - started).toBeLessThan(10_000);
  } finally {
    await server.close();
  }
});

test('each call has its own key; a key the caller sets is kept; GETs carry none', async () => {
  const server = await plannedServer([{ status: 201, body: customer }]);
  try {
    const client = createMeterloopClient({ baseUrl: server.url });
    await client.POST('/v1/customers', { body });
    await client.POST('/v1/customers', { body });
    await client.POST('/v1/customers', { body, headers: { 'Idempotency-Key': 'my-own-key' } });
    await client.GET('/v1/customers/{id}', { params: { path: { id: customer.id } } });
    const [first, second, own, read] = server.seen;
    expect(first.idempotencyKey).toBeDefined();
    expect(second.idempotencyKey).toBeDefined();
    expect(first.idempotencyKey).not.toBe(second.idempotencyKey);
    expect(own.idempotencyKey).toBe('my-own-key');
    expect(read).toMatchObject({ method: 'GET', url: `/v1/customers/${customer.id}`, idempotencyKey: undefined });
  } finally {
    await server.close();
  }
});

test('429 is retried too, at most maxRetries times; then the last answer is returned', async () => {
  const server = await plannedServer([{ status: 429, headers: { 'retry-after': '0' } }]);
  const waits: number[] = [];
  try {
    const client = createMeterloopClient({ baseUrl: server.url, maxRetries: 2, sleep: async (ms) => void waits.push(ms) });
    const { error, response } = await client.POST('/v1/customers', { body });
    expect(response.status).toBe(429);
    expect(error).toMatchObject({ code: 'rate_limited' });
    expect(server.seen).toHaveLength(3); // the first attempt and two retries
    expect(new Set(server.seen.map((request) => request.idempotencyKey)).size).toBe(1);
    expect(waits).toEqual([0, 0]);
  } finally {
    await server.close();
  }
});

test('without Retry-After the wait doubles; a Retry-After beyond maxDelayMs is not waited for', async () => {
  const backoff = await plannedServer([{ status: 503 }, { status: 503 }, { status: 200, body: customer }]);
  const slow = await plannedServer([{ status: 503, headers: { 'retry-after': '120' } }]);
  const waits: number[] = [];
  try {
    const sleep = async (ms: number): Promise<void> => void waits.push(ms);
    const client = createMeterloopClient({ baseUrl: backoff.url, baseDelayMs: 100, sleep });
    expect((await client.GET('/v1/customers/{id}', { params: { path: { id: customer.id } } })).response.status).toBe(200);
    expect(waits).toEqual([100, 200]);

    const impatient = createMeterloopClient({ baseUrl: slow.url, maxDelayMs: 5_000, sleep });
    expect((await impatient.POST('/v1/customers', { body })).response.status).toBe(503);
    expect(slow.seen).toHaveLength(1);
  } finally {
    await Promise.all([backoff.close(), slow.close()]);
  }
});

test('other failures are not retried', async () => {
  const server = await plannedServer([{ status: 500 }]);
  try {
    const client = createMeterloopClient({ baseUrl: server.url, sleep: async () => undefined });
    expect((await client.POST('/v1/customers', { body })).response.status).toBe(500);
    expect(server.seen).toHaveLength(1);
  } finally {
    await server.close();
  }
});

test('Retry-After is read as seconds or as an HTTP date', () => {
  expect(retryAfterMs('3')).toBe(3000);
  expect(retryAfterMs('Sat, 05 Dec 2026 10:00:05 GMT', Date.parse('2026-12-05T10:00:00Z'))).toBe(5000);
  expect(retryAfterMs(null)).toBeUndefined();
  expect(retryAfterMs('soon')).toBeUndefined();
});

/** The generator's staleness check, in its own process (openapi-typescript loads ES modules jest cannot). */
function checkClientTypes(file?: string): { status: number | null; output: string } {
  const root = path.join(__dirname, '..', '..');
  const args = ['clients/typescript/scripts/generate.ts', '--check', ...(file ? [file] : [])];
  const run = spawnSync(path.join(root, 'node_modules', '.bin', 'tsx'), args, { cwd: root, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

test("the client's types are generated from the committed document (run `npm run client` after `npm run openapi`), and the check can fail", () => {
  expect(checkClientTypes()).toEqual({ status: 0, output: expect.stringContaining('up to date') });
  const dir = mkdtempSync(path.join(tmpdir(), 'client-'));
  try {
    const edited = path.join(dir, 'schema.ts');
    copyFileSync(path.join(__dirname, '..', '..', 'clients', 'typescript', 'src', 'schema.ts'), edited);
    appendFileSync(edited, '// edited by hand\n');
    expect(checkClientTypes(edited)).toEqual({ status: 1, output: expect.stringContaining('stale') });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
