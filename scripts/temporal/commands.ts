/** Runs the provisioning commands (go install, mvn, javac, ...), recording each one in the cache entry's log. */
import { spawn } from 'node:child_process';
import type { WriteStream } from 'node:fs';
import type { Log } from './errors';

export interface RunOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  logFile: WriteStream;
  label: string;
  /** If given, a "still running" line every 30 s, since go install can be silent for minutes. */
  log?: Log;
}

export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs a command, appending its output to the provisioning log; resolves with stdout, rejects with the log's tail. */
export function run(cmd: string, args: string[], o: RunOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    o.logFile.write(`$ ${[cmd, ...args].map(shellQuote).join(' ')}\n`);
    const started = Date.now();
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let tail = '';
    const record = (d: Buffer): void => {
      o.logFile.write(d);
      tail = (tail + d.toString()).slice(-3000);
    };
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      record(d);
    });
    child.stderr.on('data', record);
    const heartbeat = o.log ? setInterval(() => o.log?.(`  ... ${o.label} still running (${Math.round((Date.now() - started) / 1000)} s)`), 30_000) : undefined;
    const done = (err?: Error): void => {
      if (heartbeat) clearInterval(heartbeat);
      o.logFile.write(`# ${o.label}: ${err ? err.message : 'ok'} after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      if (err) reject(err);
      else resolve(stdout);
    };
    child.once('error', (err) => done(new Error(`${o.label}: cannot run ${cmd}: ${err.message}`)));
    child.once('close', (code, signal) => (code === 0 ? done() : done(new Error(`${o.label} failed (${signal ?? `exit ${code}`}):\n${tail}`))));
  });
}
