/**
 * Structured logs for every process (API, worker): pino, one JSON object per line on stdout, with the level as a
 * word and an ISO timestamp, so lines read the same as they always did. Shared by api/ and worker/ (it imports
 * nothing of ours).
 *
 * METERLOOP_LOG picks what is written: "errors" keeps only error lines (the test suite sets it, so reports stay
 * readable), "all" or unset writes everything from info up, and any pino level name (debug, warn, silent, ...) works.
 */
import pino, { DestinationStream, Level, LevelWithSilent, Logger } from 'pino';

export type { Logger } from 'pino';

/** One log line as an object. */
export type LogEntry = Record<string, unknown>;

/** Receives each log line as an object (tests collect them; benchmarks write them aside). */
export type LogSink = (entry: LogEntry) => void;

export interface LoggerOptions {
  /** The lowest level written; from METERLOOP_LOG by default. */
  readonly level?: LevelWithSilent;
  /** Where lines go: stdout by default, or a pino destination, or a function that gets each line as an object. */
  readonly destination?: DestinationStream | LogSink;
}

/** The level a METERLOOP_LOG value asks for (unknown values: info, as unset). */
export function logLevelFromEnv(value: string | undefined): LevelWithSilent {
  if (value === 'errors') return 'error';
  if (value === 'silent' || (value !== undefined && value in pino.levels.values)) return value as LevelWithSilent;
  return 'info';
}

/** A logger whose lines carry `name` (the process or component: "api", "worker"). */
export function createLogger(name: string, options: LoggerOptions = {}): Logger {
  const { destination } = options;
  const stream: DestinationStream | undefined = typeof destination === 'function' ? { write: (line: string) => destination(JSON.parse(line) as LogEntry) } : destination;
  return pino(
    {
      name,
      level: options.level ?? logLevelFromEnv(process.env.METERLOOP_LOG),
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    stream,
  );
}

/**
 * The same logger for code that writes `{ level, msg, ...fields }` objects (the idempotency sweep, shutdown):
 * each object becomes one line at its level (info when it names none).
 */
export function entryLogger(logger: Logger): LogSink {
  return ({ level, msg, ...fields }) => {
    const method: Level = typeof level === 'string' && level in logger.levels.values ? (level as Level) : 'info';
    logger[method](fields, typeof msg === 'string' ? msg : undefined);
  };
}
