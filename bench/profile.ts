/**
 * `BENCH_PROFILE=<folder>` writes a V8 CPU profile of this (the API's) process for each measured API phase,
 * so the profile shows the server under load without start-up or the baseline mixed in. Open it in Chrome
 * DevTools (Performance > Load profile) or summarize it with `npx tsx bench/profile-summary.ts <file>`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { progress } from './report';

export async function profiled<T>(label: string, work: () => Promise<T>): Promise<T> {
  const folder = process.env.BENCH_PROFILE;
  if (!folder) return work();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 }); // µs
  await session.post('Profiler.start');
  try {
    return await work();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    mkdirSync(folder, { recursive: true });
    const file = path.join(folder, `${label}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    progress(`  CPU profile written to ${file}`);
  }
}
