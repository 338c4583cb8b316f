/**
 * What `npm start` prints: short progress lines, each problem once with what to do, and nothing of the SDK's chatter
 * (bundler output, worker state changes, one "Activity failed" per retry). METERLOOP_LOG=all shows everything.
 */
import { DefaultLogger, LogEntry, Logger } from '@temporalio/worker';

export interface StartConsole {
  /** The Temporal runtime's logger (install it before the first connection). */
  readonly temporalLogger: Logger;
  /** From now on, connection errors are the expected end of a shutdown: not shown. */
  stopping(): void;
}

export function createStartConsole(print: (line: string) => void, options: { verbose?: boolean } = {}): StartConsole {
  if (options.verbose) return { temporalLogger: new DefaultLogger('INFO'), stopping: () => undefined };
  const failedActivities = new Set<string>();
  let shuttingDown = false;
  const show = (entry: LogEntry): void => {
    if (shuttingDown) return;
    const meta = entry.meta ?? {};
    const error = meta.error as { message?: string } | undefined;
    if (entry.message === 'Activity failed') {
      // A transient failure retries with backoff; a deterministic one stops in needs_attention. Either way, once
      // per workflow and activity is enough to notice it.
      const key = `${String(meta.workflowId)}:${String(meta.activityType)}`;
      if (failedActivities.has(key)) return;
      failedActivities.add(key);
      print(`[worker] ${String(meta.activityType)} failed for ${String(meta.workflowId)}: ${error?.message ?? 'unknown error'}`);
      print('[worker]   it retries with backoff (a permanent failure shows needs_attention); later failures of it are not repeated here (METERLOOP_LOG=all shows them)');
      return;
    }
    print(`[worker] ${entry.level.toLowerCase()}: ${entry.message}${error?.message ? `: ${error.message}` : ''}`);
  };
  return {
    temporalLogger: new DefaultLogger('WARN', show),
    stopping: () => {
      shuttingDown = true;
    },
  };
}

/** The dev server's own banner (address, UI, metrics, "Stopping server..."): start.ts says the same in its own lines. */
export function isDevServerBanner(line: string): boolean {
  return /^dev server: (Server|UI|Metrics):|Stopping server/.test(line);
}
