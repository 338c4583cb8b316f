/**
 * Summarizes a .cpuprofile: where this process's CPU went, by area (JSON parse, zod, validation, pg, knex,
 * express/http, GC, idle) and by function. `npx tsx bench/profile-summary.ts <file.cpuprofile> [top]`.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** First matching rule names the area of a frame (by its file); order matters. */
const AREAS: [string, (url: string, name: string) => boolean][] = [
  ['idle', (_url, name) => name === '(idle)'],
  ['gc', (_url, name) => name === '(garbage collector)'],
  ['zod', (url) => url.includes('/node_modules/zod/')],
  ['pg (driver, protocol, serialization)', (url) => /\/node_modules\/(pg|pg-protocol|pg-types|pg-pool|postgres-[a-z]+)\//.test(url)],
  ['knex', (url) => url.includes('/node_modules/knex/')],
  ['express / body-parser / http', (url) => /\/node_modules\/(express|body-parser|raw-body|router|iconv-lite|qs|type-is|content-type|on-finished|finalhandler|send|accepts|negotiator|debug|media-typer|mime-types)\//.test(url) || /^node:(_http|http|net|stream|internal\/streams|internal\/http|_http_)/.test(url) || url.startsWith('node:internal/stream')],
  ['api/ (events route and middleware)', (url) => url.includes('/api/')],
  ['domain/ (event validation)', (url) => url.includes('/domain/')],
  ['store/', (url) => url.includes('/store/')],
  ['bench/', (url) => url.includes('/bench/')],
  ['node internals', (url) => url.startsWith('node:')],
  ['native / builtins (JSON.parse, regexp, ...)', (url) => url === ''],
];

function main(): void {
  const [file, topText] = process.argv.slice(2);
  if (!file) throw new Error('usage: profile-summary.ts <file.cpuprofile> [top]');
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicros = new Map<number, number>();
  profile.samples.forEach((id, index) => selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0)));
  const total = [...selfMicros.values()].reduce((sum, value) => sum + value, 0);

  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, micros] of selfMicros) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const area = AREAS.find(([, test]) => test(url, functionName))?.[0] ?? 'other node_modules';
    byArea.set(area, (byArea.get(area) ?? 0) + micros);
    const label = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/main\//, '')}:${lineNumber + 1}`;
    byFunction.set(label, (byFunction.get(label) ?? 0) + micros);
  }
  const busy = total - (byArea.get('idle') ?? 0);
  const line = (label: string, micros: number): string =>
    `${(micros / 1e6).toFixed(2).padStart(7)} s ${((micros / busy) * 100).toFixed(1).padStart(5)} % of busy  ${label}`;
  console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy (${((busy / total) * 100).toFixed(0)} %), the rest idle`);
  console.log('\nby area (self time):');
  for (const [area, micros] of [...byArea].sort((a, b) => b[1] - a[1])) if (area !== 'idle') console.log(line(area, micros));
  console.log('\ntop functions (self time):');
  const top = [...byFunction].filter(([label]) => !label.startsWith('(idle)')).sort((a, b) => b[1] - a[1]);
  for (const [label, micros] of top.slice(0, Number(topText ?? 25))) console.log(line(label, micros));
}

main();
