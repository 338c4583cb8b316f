/**
 * The README's "Try it" runs as written (issue 13, point 5): the fenced block after the `try-it` marker is run by
 * bash against a stack started by the project's own start script (scripts/start.ts, as `npm start` runs it, on
 * free 127.0.0.1 ports and a throwaway data folder), and its output must be the block after `try-it-output`:
 * the amounts the README states. Only the two lines a reader fills in change: the API address and the key, which
 * the start script prints. Ctrl-C (SIGINT) at the end must end the stack with "stopped".
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../store/free-port';
import { eventually } from '../support/eventually';
import { WORKER_NODE_ARGS } from '../../worker/launch';

const root = path.resolve(__dirname, '../..');
const run = promisify(execFile);

/** The fenced block that follows `<!-- marker` in the README. */
export function fencedBlockAfter(readme: string, marker: string): string {
  const at = readme.indexOf(`<!-- ${marker}`);
  if (at < 0) throw new Error(`README.md has no <!-- ${marker} --> marker`);
  const block = /```[a-z]*\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!block) throw new Error(`no fenced block after <!-- ${marker} -->`);
  return block[1];
}

const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
const script = fencedBlockAfter(readme, 'try-it:');
const expected = fencedBlockAfter(readme, 'try-it-output');

let stack: ChildProcess;
let output = '';
let dataDir: string;
let apiPort: number;

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'meterloop-readme-'));
  const [postgresPort, temporalPort, uiPort, port] = [await freePort(), await freePort(), await freePort(), await freePort()];
  apiPort = port;
  // node with tsx's loader runs scripts/start.ts as `npm start` does (tsx, the worker's preload), without npm and
  // tsx processes in between.
  stack = spawn(process.execPath, [...WORKER_NODE_ARGS, '--import', 'tsx', path.join(root, 'scripts/start.ts')], {
    cwd: root,
    env: {
      ...process.env,
      METERLOOP_DATA_DIR: dataDir,
      POSTGRES_PORT: String(postgresPort),
      TEMPORAL_PORT: String(temporalPort),
      TEMPORAL_UI_PORT: String(uiPort),
      PORT: String(port),
      WORKER_METRICS_ADDRESS: 'off',
      JANITOR_SCHEDULE: 'off',
      METERLOOP_LOG: '',
      DATABASE_URL: '',
      TEMPORAL_ADDRESS: '',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  stack.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  stack.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  await eventually(async () => output.includes('[start] ready') || stack.exitCode !== null, () => `npm start to be ready; its log:\n${output}`, { timeoutMs: 150_000, intervalMs: 500 });
  if (stack.exitCode !== null) throw new Error(`npm start exited ${stack.exitCode}:\n${output}`);
}, 180_000);

afterAll(async () => {
  if (stack && stack.exitCode === null) {
    stack.kill('SIGKILL');
    await new Promise((resolve) => stack.once('exit', resolve));
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('npm start prints a short log: progress lines only, no bundler output, the key and how to stop the demo', () => {
  const lines = output.trim().split('\n');
  expect(lines.filter((line) => !line.startsWith('[start] '))).toEqual([]);
  expect(output).not.toMatch(/webpack|Workflow bundle created|Worker state changed/);
  expect(output).toMatch(/\[start\] API key {4}ml_\S+/);
  expect(output).toContain('/cancel');
  expect(lines.length).toBeLessThan(20);
});

test("the README's Try-it commands, run as written, print the amounts the README states; Ctrl-C then prints stopped", async () => {
  const key = /\[start\] API key {4}(ml_\S+)/.exec(output)![1];
  // The two lines a reader fills in: where the API listens (a free port here) and the key npm start printed.
  const filledIn = script
    .replace(/^API=http:\/\/127\.0\.0\.1:3000\/v1$/m, `API=http://127.0.0.1:${apiPort}/v1`)
    .replace(/^KEY=ml_\.\.\..*$/m, `KEY=${key}`);
  expect(filledIn).toContain(`KEY=${key}`);
  expect(filledIn).toContain(`:${apiPort}/v1`);
  const { stdout } = await run('bash', ['-e', '-o', 'pipefail', '-c', filledIn], { cwd: root, timeout: 150_000 });
  expect(stdout.trim().split('\n')).toEqual(expected.trim().split('\n'));

  // Ctrl-C as a terminal sends it: the stack drains and says so.
  const exited = new Promise<number | null>((resolve) => stack.once('exit', resolve));
  stack.kill('SIGINT');
  expect(await exited).toBe(0);
  expect(output.trim().split('\n').slice(-2)).toEqual(['[start] stopping (finishing in-flight work)', '[start] stopped']);
}, 240_000);
