/**
 * The Temporal servers that tests and `npm start` run against, found or provisioned (DESIGN.md, "Temporal servers
 * without downloads"). This is the entry point other code imports; the work is in scripts/temporal/:
 *   ladder.ts        the one resolution order both servers share: explicit path or address -> cache -> SDK download
 *                    -> provisioning from registries; one log line says which server was used
 *   cli.ts           the dev server (Temporal CLI), provisioned by go install
 *   test-server.ts   the time-skipping test server, from Maven Central (test-server-pom.xml), with our loopback-only
 *                    launcher (LoopbackTestServer.java), an AppCDS archive (app-cds.ts) and an exec'ing wrapper
 *   cache.ts         the cache directory, the provisioning lock, and build-in-temp-dir-then-rename
 *   dev-server.ts    running the dev server for `npm start`, e2e tests and the billing bench
 *
 * Cache layout (temporalCacheDir(), default ~/.cache/meterloop/temporal):
 *   cli-<version>-<platform>-<arch>/bin/temporal      Temporal CLI (dev server), built by go install
 *   cli-<version>-<platform>-<arch>/manifest.json
 *   test-server-<version>/temporal-test-server        wrapper script: exec java ... <port>
 *   test-server-<version>/lib/*.jar, launcher.jar     Maven Central jars + our loopback-only launcher
 *   test-server-<version>/app.jsa                     AppCDS archive (JVM start-up ~3x faster)
 *   test-server-<version>/manifest.json, provision.log
 *   sdk-download/                                     the SDK's own downloads (step 3)
 */
import { cliPath } from './temporal/cli';
import { temporalCacheDir } from './temporal/cache';
import { testServerPath } from './temporal/test-server';

export { temporalCacheDir } from './temporal/cache';
export { provisionDevServer, resolveDevServer, TEMPORAL_CLI_VERSION, type DevServerResolution } from './temporal/cli';
export { startDevServer, type RunningDevServer, type StartDevServerOptions } from './temporal/dev-server';
export { TemporalServerUnavailableError } from './temporal/errors';
export type { ExecutableResolution, ProvisionOptions, ProvisionResult, ResolveOptions, ServerSource } from './temporal/ladder';
export { cdnReachable } from './temporal/sdk-download';
export { registerSearchAttributes, type SearchAttributeTypeName } from './temporal/search-attributes';
export {
  provisionTimeSkippingServer,
  resolveTimeSkippingServer,
  TEMPORAL_TEST_SERVER_VERSION,
  type TimeSkippingServerResolution,
} from './temporal/test-server';

/** Where provisioned copies live (whether or not they exist yet). */
export function cachedServerPaths(cacheDir: string = temporalCacheDir()): { cli: string; testServer: string } {
  return { cli: cliPath(cacheDir), testServer: testServerPath(cacheDir) };
}
