/** Waiting until a freshly started Temporal server answers gRPC. */
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';

export function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Polls until `check` succeeds against the server at `address`. A plain TCP probe comes first because a gRPC
 * connection attempt to a closed port backs off for about a second.
 */
export async function waitForGrpc(address: string, timeoutMs: number, isDead: () => boolean, check: (c: Connection) => Promise<void>): Promise<void> {
  const [host, portText] = [address.slice(0, address.lastIndexOf(':')), address.slice(address.lastIndexOf(':') + 1)];
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = new Error('timed out');
  while (Date.now() < deadline) {
    if (isDead()) throw new Error('the server process exited');
    if (await tcpOpen(host, Number(portText))) {
      let connection: Connection | undefined;
      try {
        connection = await Connection.connect({ address, connectTimeout: 2000 });
        const c = connection;
        // A deadline on every call: whatever holds the port may not speak gRPC at all (e.g. a port clash).
        await c.withDeadline(Date.now() + 3000, async () => {
          await c.healthService.check({});
          await check(c);
        });
        return;
      } catch (err) {
        lastError = err;
      } finally {
        await connection?.close().catch(() => undefined);
      }
    }
    await sleep(25);
  }
  throw lastError;
}
