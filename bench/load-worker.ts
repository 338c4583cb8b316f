/**
 * Child-process entry of the load generator (see load.ts): receives one LoadSpec over IPC, runs it, sends the
 * result back and exits. Kept apart from the API process so the two do not share an event loop.
 */
import { generateLoad, LoadSpec } from './load';

process.once('message', (message: { spec: LoadSpec }) => {
  generateLoad(message.spec)
    .then((result) => process.send!({ result }, () => process.disconnect()))
    .catch((error: unknown) => process.send!({ error: error instanceof Error ? (error.stack ?? error.message) : String(error) }, () => process.disconnect()));
});
