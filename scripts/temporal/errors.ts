/** Nothing usable was found and provisioning was not allowed or not possible; the message says what to do. */
export class TemporalServerUnavailableError extends Error {
  override name = 'TemporalServerUnavailableError';
}

/** Where progress and the "which server" lines go. */
export type Log = (line: string) => void;

export const defaultLog: Log = (line) => {
  process.stderr.write(`[temporal] ${line}\n`);
};
