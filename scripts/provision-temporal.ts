/**
 * `npm run provision`: makes sure both Temporal servers are available (see scripts/temporal-servers.ts for the
 * order they are looked for in), provisioning them into the cache if needed, and says which ones will be used.
 *   --check   report only: provision nothing; exit 1 if a server would still have to be provisioned.
 * A second run finds the cache and does nothing.
 */
import {
  resolveDevServer,
  resolveTimeSkippingServer,
  temporalCacheDir,
  TemporalServerUnavailableError,
  TEMPORAL_CLI_VERSION,
  TEMPORAL_TEST_SERVER_VERSION,
  type DevServerResolution,
} from './temporal-servers';

function describe(r: DevServerResolution): string {
  if (r.kind === 'address') return `already running at ${r.address} (TEMPORAL_ADDRESS)`;
  const where = r.executable.type === 'existing-path' ? r.executable.path : `SDK download into ${r.executable.downloadDir ?? 'the temp dir'}`;
  const how = { env: 'from the environment', cache: 'cached, nothing to do', 'sdk-download': 'the SDK downloads it', provisioned: 'provisioned now' }[r.source];
  return `${how}: ${where}`;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--check');
  if (unknown.length) {
    process.stderr.write(`usage: provision-temporal [--check]\nunknown argument: ${unknown.join(' ')}\n`);
    return 2;
  }
  const check = args.includes('--check');
  const servers: Array<[string, () => Promise<DevServerResolution>]> = [
    [`dev server (Temporal CLI ${TEMPORAL_CLI_VERSION})`, () => resolveDevServer({ provision: !check })],
    [`time-skipping test server ${TEMPORAL_TEST_SERVER_VERSION}`, () => resolveTimeSkippingServer({ provision: !check })],
  ];
  process.stdout.write(`Temporal cache: ${temporalCacheDir()}\n`);
  let missing = 0;
  for (const [name, resolve] of servers) {
    const started = performance.now();
    try {
      const r = await resolve();
      process.stdout.write(`${name}: ${describe(r)} (${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
    } catch (err) {
      if (!(err instanceof TemporalServerUnavailableError)) throw err;
      process.stdout.write(`${name}: MISSING\n  ${err.message}\n`);
      missing++;
    }
  }
  return missing ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
