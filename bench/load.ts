/**
 * The HTTP load generator: a fixed number of concurrent keep-alive connections, each sending its next
 * pre-serialized request as soon as the previous answer arrives (closed loop). Bodies are built before the
 * clock starts, so the clock measures the server, not JSON.stringify in the client.
 *
 * It runs in a child process by default (see `runLoad`): in the API's own process it would share the event
 * loop with the server it measures and slow it down by its own work.
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { EventSource, requestBodies } from './events';

export interface LoadSpec {
  /** e.g. http://127.0.0.1:41234/v1/events */
  readonly url: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  readonly apiKey: string;
  readonly source: EventSource;
  readonly eventCount: number;
  /** Events per request; 1 sends the bare event (single-event ingestion). */
  readonly batchSize: number;
  readonly concurrency: number;
  /** `http`: node:http with a keep-alive agent (lighter); `fetch`: Node's global fetch (undici). */
  readonly client: 'http' | 'fetch';
}

export interface LoadResult {
  readonly requests: number;
  readonly elapsedSeconds: number;
  /** Per request, in ms, in completion order. */
  readonly latenciesMs: number[];
  readonly accepted: number;
  readonly duplicates: number;
  readonly rejected: number;
  /** Requests answered with a status other than 200 (or not answered). */
  readonly failures: number;
  readonly firstFailure?: string;
  /** CPU (user + system) of the process that ran the load while the clock ran: the generator alone in a child. */
  readonly loadProcessCpuSeconds: number;
}

export type LoadPlacement = 'child' | 'in-process';

/** Runs the load in a child process (default) or in this one; `BENCH_LOAD=in-process` forces the latter. */
export async function runLoad(spec: LoadSpec, placement: LoadPlacement = loadPlacement()): Promise<LoadResult> {
  return placement === 'child' ? runLoadInChild(spec) : generateLoad(spec);
}

export function loadPlacement(): LoadPlacement {
  return process.env.BENCH_LOAD === 'in-process' ? 'in-process' : 'child';
}

export async function generateLoad(spec: LoadSpec): Promise<LoadResult> {
  const bodies = requestBodies(spec.source, spec.eventCount, spec.batchSize);
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${spec.apiKey}` };
  const send = spec.client === 'fetch' ? fetchSender(spec.url, headers) : httpSender(spec.url, headers, spec.concurrency);
  const latenciesMs: number[] = [];
  let accepted = 0;
  let duplicates = 0;
  let rejected = 0;
  let failures = 0;
  let firstFailure: string | undefined;
  let next = 0;

  const worker = async (): Promise<void> => {
    while (next < bodies.length) {
      const body = bodies[next++];
      const sentAt = process.hrtime.bigint();
      try {
        const { status, text } = await send.post(body);
        latenciesMs.push(Number(process.hrtime.bigint() - sentAt) / 1e6);
        if (status !== 200) {
          failures += 1;
          firstFailure ??= `HTTP ${status}: ${text.slice(0, 300)}`;
          continue;
        }
        const answer = JSON.parse(text) as { accepted: number; duplicates: number; rejected: number };
        accepted += answer.accepted;
        duplicates += answer.duplicates;
        rejected += answer.rejected;
      } catch (error) {
        failures += 1;
        firstFailure ??= String(error);
      }
    }
  };

  const cpuAtStart = process.cpuUsage();
  const startedAt = process.hrtime.bigint();
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  const elapsedSeconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
  const cpu = process.cpuUsage(cpuAtStart);
  send.close();
  const loadProcessCpuSeconds = (cpu.user + cpu.system) / 1e6;
  return { requests: bodies.length, elapsedSeconds, latenciesMs, accepted, duplicates, rejected, failures, firstFailure, loadProcessCpuSeconds };
}

interface Sender {
  post(body: Buffer): Promise<{ status: number; text: string }>;
  close(): void;
}

function httpSender(url: string, headers: Record<string, string>, concurrency: number): Sender {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const target = new URL(url);
  return {
    post: (body) =>
      new Promise((resolve, reject) => {
        const request = http.request(
          {
            host: target.hostname,
            port: target.port,
            path: target.pathname,
            method: 'POST',
            agent,
            headers: { ...headers, 'content-length': body.length },
          },
          (response) => {
            const chunks: Buffer[] = [];
            response.on('data', (chunk: Buffer) => chunks.push(chunk));
            response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
            response.on('error', reject);
          },
        );
        request.on('error', reject);
        request.end(body);
      }),
    close: () => agent.destroy(),
  };
}

function fetchSender(url: string, headers: Record<string, string>): Sender {
  return {
    async post(body) {
      const response = await fetch(url, { method: 'POST', headers, body });
      return { status: response.status, text: await response.text() };
    },
    close: () => undefined,
  };
}

/** Forks bench/load-worker.ts (TypeScript runs through the tsx loader this process was started with). */
function runLoadInChild(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, 'load-worker.ts'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    let result: LoadResult | undefined;
    child.on('message', (message: { result?: LoadResult; error?: string }) => {
      if (message.error) reject(new Error(`load generator failed: ${message.error}`));
      else result = message.result;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (result) resolve(result);
      else reject(new Error(`load generator exited with code ${code} without a result`));
    });
    child.send({ spec });
  });
}
