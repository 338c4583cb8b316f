import net from 'node:net';

/**
 * A TCP proxy in front of a server (Postgres, here) that a test can cut and restore: `cut()` drops every open
 * connection and stops listening, so the client sees exactly what a crashed server gives it (connections
 * terminated, then ECONNREFUSED); `restore()` listens on the same port again.
 */
export interface TcpProxy {
  readonly port: number;
  /** `target` with its host and port replaced by the proxy's (a postgres:// URL, for instance). */
  readonly url: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const upstream = new URL(target);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const backend = net.connect(Number(upstream.port), upstream.hostname);
    for (const socket of [client, backend]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined); // the other side's close() ends the pair
    }
    client.pipe(backend).pipe(client);
    client.on('close', () => backend.destroy());
    backend.on('close', () => client.destroy());
  });
  const listen = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  const stopListening = (): Promise<void> => new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  await listen(0);
  const port = (server.address() as net.AddressInfo).port;
  const proxied = new URL(target);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(port);

  const cut = async (): Promise<void> => {
    const closed = stopListening();
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  return {
    port,
    url: proxied.toString(),
    cut,
    restore: () => listen(port),
    close: cut,
  };
}
