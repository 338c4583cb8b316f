import type { Server } from 'node:http';

export interface GracefulCloseOptions {
  /** Give up waiting for in-flight requests after this long and cut their connections. */
  readonly timeoutMs?: number;
  readonly log?: (entry: Record<string, unknown>) => void;
}

/**
 * Stops accepting connections, lets every in-flight request finish (closing keep-alive connections as they go
 * idle, so clients reconnect elsewhere), and resolves when the last one is done, or after `timeoutMs`, when the
 * remaining connections are cut. Resolves true when everything finished in time.
 */
export function closeGracefully(server: Server, options: GracefulCloseOptions = {}): Promise<boolean> {
  const timeoutMs = options.timeoutMs ?? 25_000;
  return new Promise((resolve) => {
    let timedOut = false;
    const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
    const deadline = setTimeout(() => {
      timedOut = true;
      options.log?.({ level: 'warn', msg: 'shutdown timeout: cutting the remaining connections', timeout_ms: timeoutMs });
      server.closeAllConnections();
    }, timeoutMs);
    server.close(() => {
      clearInterval(idleSweep);
      clearTimeout(deadline);
      resolve(!timedOut);
    });
    server.closeIdleConnections();
  });
}
