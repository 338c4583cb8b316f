/**
 * Why a Temporal connection failed, in words an operator can act on. The SDKs report a wrong CA or a missing client
 * certificate as "Failed to connect before the deadline" or a transport error; a TLS handshake of our own with the
 * same settings names the cause (untrusted certificate, wrong server name, certificate required, plain vs TLS port).
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { TemporalConnectionSettings } from './temporal-connection';

/** A failed connection, with the diagnosis in the message and the SDK's own error as the cause. */
export class TemporalConnectError extends Error {
  override readonly name = 'TemporalConnectError';
}

/**
 * Runs `connect` with the settings' options; on failure throws a TemporalConnectError that says where it tried to
 * connect, how (TLS mode, API key) and what a TLS or TCP probe found.
 */
export async function connectOrExplain<C>(settings: TemporalConnectionSettings, connect: (options: TemporalConnectionSettings['connectionOptions']) => Promise<C>): Promise<C> {
  try {
    return await connect(settings.connectionOptions);
  } catch (error) {
    const { address, namespace, tls: mode, apiKey } = settings.summary;
    const diagnosis = await diagnoseTemporalConnection(settings).catch((probeError: unknown) => `(the diagnosis itself failed: ${String(probeError)})`);
    throw new TemporalConnectError(
      `cannot connect to Temporal at ${address} (namespace ${namespace}, TLS ${mode}${apiKey ? ', API key' : ''}): ${diagnosis}. SDK error: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

const PROBE_TIMEOUT_MS = 3_000;
/** How long to wait after a TLS 1.3 handshake for the server's verdict on our client certificate (it comes later). */
const CLIENT_CERT_VERDICT_MS = 300;

/** One probe of the server with the settings' TLS options; a sentence, never an exception. */
export async function diagnoseTemporalConnection(settings: TemporalConnectionSettings): Promise<string> {
  const { host, port } = splitAddress(settings.connectionOptions.address);
  const tlsOptions = settings.connectionOptions.tls;
  if (!tlsOptions) {
    const plain = await probe(() => net.connect(port, host), 'connect');
    if (plain) return `${plain} (TCP to ${host}:${port})`;
    const speaksTls = await probe(() => tls.connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], ...serverName(host) }), 'secureConnect');
    return speaksTls
      ? 'the port accepts TCP but not plain gRPC'
      : 'the server answers with TLS but TLS is off here: set TEMPORAL_TLS=true (and TEMPORAL_TLS_SERVER_CA_CERT_PATH if its CA is private)';
  }
  const options = typeof tlsOptions === 'object' ? tlsOptions : {};
  const socketOptions: tls.ConnectionOptions = {
    host,
    port,
    ALPNProtocols: ['h2'],
    ...(options.serverRootCACertificate ? { ca: [Buffer.from(options.serverRootCACertificate)] } : {}),
    ...(options.clientCertPair ? { cert: Buffer.from(options.clientCertPair.crt), key: Buffer.from(options.clientCertPair.key) } : {}),
    ...serverName(options.serverNameOverride ?? host),
  };
  const failure = await probe(() => tls.connect(socketOptions), 'secureConnect', CLIENT_CERT_VERDICT_MS);
  if (!failure) return 'a TLS handshake with these settings succeeds, so the failure is above TLS (namespace, API key, or the server itself)';
  return `TLS handshake failed: ${readable(failure)}${hint(failure)}`;
}

/** OpenSSL's errors carry a code path around the reason ("...:SSL routines:ssl3_read_bytes:<reason>:../deps/..."). */
function readable(failure: string): string {
  return /SSL routines:[^:]*:([^:]+):/.exec(failure)?.[1] ?? failure.trim();
}

function hint(failure: string): string {
  if (/certificate required|handshake failure|bad certificate|unknown ca/i.test(failure)) {
    return ' (the server wants a client certificate it trusts: TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH)';
  }
  if (/self.signed|unable to (verify|get)|issuer/i.test(failure)) return ' (the server certificate is not signed by a CA trusted here: TEMPORAL_TLS_SERVER_CA_CERT_PATH)';
  if (/altnames|hostname|does not match/i.test(failure)) return " (the certificate is for another name: TEMPORAL_TLS_SERVER_NAME sets the name to check)";
  if (/wrong version number|packet length too long|ECONNRESET/i.test(failure)) return ' (the port may not speak TLS: TEMPORAL_TLS=false for a plain server)';
  return '';
}

/**
 * Opens a socket and waits for `success`, then `settleMs` more for a late error; resolves with the error message,
 * or undefined when none came.
 */
function probe(open: () => net.Socket, success: 'connect' | 'secureConnect', settleMs = 0): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = open();
    let settled = false;
    const finish = (outcome: string | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish(`no answer within ${PROBE_TIMEOUT_MS} ms`), PROBE_TIMEOUT_MS);
    socket.once('error', (error) => finish(error.message));
    socket.once(success, () => {
      if (settleMs === 0) return finish(undefined);
      socket.once('close', () => finish('the server closed the connection right after the handshake'));
      setTimeout(() => finish(undefined), settleMs);
    });
  });
}

/** SNI takes host names only (RFC 6066); for an IP address the certificate is checked against the IP instead. */
function serverName(name: string): { servername?: string } {
  return net.isIP(name) ? {} : { servername: name };
}

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const host = colon > 0 ? address.slice(0, colon).replace(/^\[|\]$/g, '') : address;
  return { host, port: colon > 0 ? Number(address.slice(colon + 1)) : 7233 };
}
