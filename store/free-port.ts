import net from 'node:net';

/**
 * A port that was free on `host` a moment ago: the OS picks it when we bind port 0, and we release it at once.
 * Shared by the embedded Postgres and the Temporal servers (scripts/ may import store/, not the other way round).
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
