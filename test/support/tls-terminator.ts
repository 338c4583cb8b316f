/**
 * TLS in front of a plain Temporal server, as a load balancer or an mTLS-enforcing ingress puts it: Node's TLS
 * server (ALPN h2, our test certificate) decrypts and pipes the bytes to the dev server's plain gRPC port. With
 * `requireClientCert` the handshake fails for a client without a certificate signed by the test CA.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { TestPki } from './test-certificates';

export interface TlsTerminator {
  /** 127.0.0.1:<port> */
  readonly address: string;
  /** The common name of each client certificate that completed a handshake (empty string: no certificate). */
  readonly handshakes: string[];
  /** Handshake failures the server saw (e.g. no client certificate when one is required). */
  readonly refusals: string[];
  close(): Promise<void>;
}

export async function startTlsTerminator(pki: TestPki, upstream: string, options: { requireClientCert: boolean }): Promise<TlsTerminator> {
  const [host, port] = [upstream.slice(0, upstream.lastIndexOf(':')), Number(upstream.slice(upstream.lastIndexOf(':') + 1))];
  const sockets = new Set<net.Socket>();
  const handshakes: string[] = [];
  const refusals: string[] = [];
  const server = tls.createServer(
    {
      key: fs.readFileSync(pki.serverKey),
      cert: fs.readFileSync(pki.serverCert),
      ca: [fs.readFileSync(pki.caCert)],
      requestCert: options.requireClientCert,
      rejectUnauthorized: options.requireClientCert,
      ALPNProtocols: ['h2'],
    },
    (client) => {
      const peer = client.getPeerCertificate();
      handshakes.push(peer && peer.subject ? String(peer.subject.CN) : '');
      const backend = net.connect(port, host);
      for (const socket of [client, backend]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(backend).pipe(client);
      client.on('close', () => backend.destroy());
      backend.on('close', () => client.destroy());
    },
  );
  server.on('tlsClientError', (error) => refusals.push(error.message));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    address,
    handshakes,
    refusals,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
