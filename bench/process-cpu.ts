/**
 * CPU seconds of this process and every process below it (Temporal dev server, Postgres backends, the worker
 * child), grouped by program name, from Linux /proc. Two snapshots give who was busy in between, which tells
 * which side of a benchmark is the bottleneck. Returns an empty map elsewhere.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Kernel clock ticks per second (USER_HZ): 100 on every Linux the project runs on. */
const TICKS_PER_SECOND = 100;

export type CpuByProgram = Map<string, number>;

interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  readonly name: string;
  readonly cpuSeconds: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ... utime stime": comm may hold spaces and parentheses, so cut at the last ')'.
    const close = text.lastIndexOf(')');
    const name = text.slice(text.indexOf('(') + 1, close);
    const fields = text.slice(close + 2).split(' ');
    // utime + stime, plus cutime + cstime: the CPU of children that exited and were reaped (a Postgres backend
    // that closed its connection), which would otherwise vanish from the totals between two snapshots.
    const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number);
    return { pid, ppid: Number(fields[1]), name, cpuSeconds: (utime + stime + cutime + cstime) / TICKS_PER_SECOND };
  } catch {
    return undefined; // gone meanwhile, or not Linux
  }
}

/** Program name -> CPU seconds used so far by this process tree, exited-and-reaped children included. */
export function sampleTreeCpu(root = process.pid): CpuByProgram {
  let pids: number[];
  try {
    pids = readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number);
  } catch {
    return new Map();
  }
  const stats = pids.map(readStat).filter((stat): stat is ProcStat => stat !== undefined);
  const children = new Map<number, ProcStat[]>();
  for (const stat of stats) children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), stat]);
  const byProgram: CpuByProgram = new Map();
  const self = stats.find((stat) => stat.pid === root);
  const queue = self ? [self] : [];
  while (queue.length > 0) {
    const stat = queue.pop()!;
    const program = stat.pid === root ? 'bench' : stat.name;
    byProgram.set(program, (byProgram.get(program) ?? 0) + stat.cpuSeconds);
    queue.push(...(children.get(stat.pid) ?? []));
  }
  return byProgram;
}

/** e.g. "temporal 1.62, postgres 0.31, node 0.05 cores" over `elapsedSeconds`. */
export function describeTreeCpu(before: CpuByProgram, after: CpuByProgram, elapsedSeconds: number): string {
  const parts = [...after.entries()]
    .map(([program, seconds]) => [program, (seconds - (before.get(program) ?? 0)) / elapsedSeconds] as const)
    .filter(([, cores]) => cores >= 0.01)
    .sort((a, b) => b[1] - a[1])
    .map(([program, cores]) => `${program} ${cores.toFixed(2)}`);
  return parts.length ? `${parts.join(', ')} cores` : 'process CPU n/a';
}

/** e.g. "temporal 3.1, node 2.4, postgres 1.2 ms CPU per period": what each program spent per unit of work. */
export function describeTreeCpuPer(before: CpuByProgram, after: CpuByProgram, units: number, unit: string): string {
  const parts = [...after.entries()]
    .map(([program, seconds]) => [program, ((seconds - (before.get(program) ?? 0)) * 1000) / units] as const)
    .filter(([, ms]) => ms >= 0.05)
    .sort((a, b) => b[1] - a[1]);
  const total = parts.reduce((sum, [, ms]) => sum + ms, 0);
  return parts.length ? `${parts.map(([program, ms]) => `${program} ${ms.toFixed(1)}`).join(', ')} (total ${total.toFixed(1)}) ms CPU per ${unit}` : 'process CPU n/a';
}
