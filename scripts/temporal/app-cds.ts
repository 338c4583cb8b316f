/**
 * Class-data sharing for the test server's JVM: the SDK gives a server 5 seconds to answer, so a training run
 * dumps the classes it loaded into an archive that later starts map in (about 3x faster start-up). Also times
 * start-ups, which is how the training run is exercised and how the result is checked.
 */
import { spawn } from 'node:child_process';
import type { WriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { freePort } from '../../store/free-port';
import { exists } from './files';
import { waitForGrpc } from './grpc-ready';

export const CDS_ARCHIVE = 'app.jsa';

/**
 * Trains an archive in `dir` for `java <baseArgs> <port>`; returns start-up times with and without it
 * (withCds undefined: no archive, e.g. a JDK older than 13; the server then starts without one).
 */
export async function trainCdsArchive(java: string, baseArgs: string[], dir: string, logFile: WriteStream): Promise<{ withCds?: number; withoutCds: number }> {
  const withoutCds = await timeServerStart(java, baseArgs, dir);
  let withCds: number | undefined;
  try {
    await timeServerStart(java, [`-XX:ArchiveClassesAtExit=${CDS_ARCHIVE}`, ...baseArgs], dir, 'SIGTERM');
    if (await exists(path.join(dir, CDS_ARCHIVE))) withCds = await timeServerStart(java, [`-XX:SharedArchiveFile=${CDS_ARCHIVE}`, ...baseArgs], dir);
  } catch (err) {
    logFile.write(`CDS training failed: ${String(err)}\n`);
  }
  if (withCds === undefined) await fs.rm(path.join(dir, CDS_ARCHIVE), { force: true });
  return { withCds, withoutCds };
}

/**
 * Starts a test-server command with a free port appended, returns the ms until it answers gRPC, then stops it
 * (SIGKILL, as the SDK does; SIGTERM for the CDS training run, whose archive is written at a clean JVM exit).
 */
export async function timeServerStart(cmd: string, args: string[], cwd: string, stopWith: NodeJS.Signals = 'SIGKILL'): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(cmd, [...args, String(port)], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  let dead = false; // exited, or never started (spawn errors emit 'error' and no 'exit')
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (err) => {
      stderr += `${err.message}\n`;
      resolve();
    });
  }).then(() => {
    dead = true;
  });
  try {
    const address = `127.0.0.1:${port}`;
    await waitForGrpc(address, 30_000, () => dead, async (connection) => {
      // What the SDK's readiness probe and a first test do: health, system info, namespace.
      await connection.workflowService.getSystemInfo({});
      await connection.workflowService.describeNamespace({ namespace: 'default' });
    });
    return performance.now() - started;
  } catch (err) {
    throw new Error(`${cmd} did not answer on port ${port}: ${String(err)}\n${stderr}`, { cause: err });
  } finally {
    if (!dead) child.kill(stopWith);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
}
