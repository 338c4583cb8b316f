/**
 * What a benchmark hands back, and how it is printed: one JSON object per line on stdout (machines read it),
 * progress on stderr (people read it). Names are stable so results compare across runs and commits.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { BenchStack } from './stack';

export interface BenchResult {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  /** Only when a baseline ran beside ours in the same process and run. */
  readonly baseline?: { readonly name: string; readonly value: number };
}

export interface Benchmark {
  /** Stable name of the first result line (further lines share its prefix, e.g. `ingest.single.p99`). */
  readonly name: string;
  /** Module name, so `npm run bench -- ingest` picks every benchmark of bench/ingest.ts. */
  readonly group: string;
  /** Needs Postgres and the HTTP API (started once, shared by every selected benchmark). */
  readonly needsStack: boolean;
  run(context: BenchContext): Promise<BenchResult[]>;
}

export interface BenchContext {
  /** Present when `needsStack`. */
  readonly stack?: BenchStack;
}

/** The JSON line: `ratio` is ours / baseline, so above 1 is faster for throughputs (units per second). */
export function formatResult(result: BenchResult): string {
  const line: Record<string, unknown> = { name: result.name, value: round(result.value), unit: result.unit };
  if (result.baseline) {
    line.baseline = { name: result.baseline.name, value: round(result.baseline.value) };
    line.ratio = round(result.value / result.baseline.value, 3);
  }
  return JSON.stringify(line);
}

/** Progress for humans; never on stdout, which carries only JSON lines. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

export function round(value: number, digits?: number): number {
  const places = digits ?? (Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 1 ? 2 : 3);
  const factor = 10 ** places;
  return Math.round(value * factor) / factor;
}

export function percentile(sortedAscending: ArrayLike<number>, p: number): number {
  if (sortedAscending.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sortedAscending.length) - 1;
  return sortedAscending[Math.min(sortedAscending.length - 1, Math.max(0, rank))];
}

export function seconds(startNs: bigint, endNs = process.hrtime.bigint()): number {
  return Number(endNs - startNs) / 1e9;
}

/** CPU in use on the whole machine (Linux /proc/stat), neighbours included; undefined elsewhere. */
export interface MachineCpuSample {
  readonly busy: number;
  readonly total: number;
}

export function sampleMachineCpu(): MachineCpuSample | undefined {
  try {
    const [cpuLine] = readFileSync('/proc/stat', 'utf8').split('\n');
    const fields = cpuLine.trim().split(/\s+/).slice(1).map(Number);
    const idle = fields[3] + (fields[4] ?? 0); // idle + iowait
    const total = fields.reduce((sum, value) => sum + value, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** e.g. "1.93 of 2 cores busy" since `since`. */
export function machineBusy(since: MachineCpuSample | undefined): string {
  const now = sampleMachineCpu();
  if (!since || !now || now.total === since.total) return 'machine CPU n/a';
  const cores = os.availableParallelism();
  return `machine ${(((now.busy - since.busy) / (now.total - since.total)) * cores).toFixed(2)} of ${cores} cores busy`;
}

