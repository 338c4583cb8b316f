import { Client, Connection } from '@temporalio/client';
import { ApiDependencies, createApp } from '../../api/app';
import type { LogEntry } from '../../api/observability';
import type { Database } from '../../store/database';
import { serve, ServeOptions, TestHttp } from './http';

export interface ApiOnly {
  readonly http: TestHttp;
  /** Every call the API made to start, signal or address a workflow (API-only tests expect none). */
  readonly temporalCalls: string[];
  /** The request log lines the app wrote. */
  readonly logs: LogEntry[];
  close(): Promise<void>;
}

/**
 * The API without a Temporal server, for tests of the HTTP surface where no workflow may start: the client's
 * connection dials nothing until used (port 1 makes any use fail loudly), and every workflow entry point the API
 * has (start, signalWithStart, getHandle) is recorded, so a test can prove the API never tried.
 */
export async function serveApiOnly(db: Database, options: Partial<ApiDependencies> & ServeOptions = {}): Promise<ApiOnly> {
  const temporal = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
  const temporalCalls: string[] = [];
  for (const name of ['start', 'signalWithStart', 'getHandle', 'execute'] as const) {
    const original = temporal.workflow[name].bind(temporal.workflow) as (...args: unknown[]) => unknown;
    (temporal.workflow as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      temporalCalls.push(`${name} ${String(args[0])}`);
      return original(...args);
    };
  }
  const logs: LogEntry[] = [];
  const { headers, checkContract, ...deps } = options;
  const http = await serve(createApp({ db, temporal, log: (entry) => logs.push(entry), ...deps }), { headers, checkContract });
  return {
    http,
    temporalCalls,
    logs,
    close: async () => {
      await http.close();
      await temporal.connection.close();
    },
  };
}
