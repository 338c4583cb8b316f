/**
 * The logger the dispatcher writes to. A structural type that a pino logger satisfies as it is, so a process
 * that has one passes it in; without one, the dispatcher writes one JSON line per entry to stdout.
 */

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

function jsonLine(level: 'info' | 'warn' | 'error'): (obj: object, msg?: string) => void {
  return (obj, msg) => console.log(JSON.stringify({ level, ...(msg === undefined ? {} : { msg }), ...obj }));
}

/** `{"level":"warn","msg":"...",...fields}` on stdout, one line per entry. */
export const jsonConsoleLogger: Logger = { info: jsonLine('info'), warn: jsonLine('warn'), error: jsonLine('error') };
