/**
 * Where and how every process reaches Temporal: the worker, the API and the scripts all build their connection here,
 * so one image runs against the dev server, a self-hosted cluster with mTLS, or Temporal Cloud with an API key.
 *
 * The settings come from `@temporalio/envconfig`, the loader every Temporal SDK and the `temporal` CLI share:
 * a profile of a TOML file (TEMPORAL_CONFIG_FILE, default ~/.config/temporalio/temporal.toml; TEMPORAL_PROFILE,
 * default "default"), overridden by the standard variables TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
 * TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH/_DATA, TEMPORAL_TLS_CLIENT_KEY_PATH/_DATA,
 * TEMPORAL_TLS_SERVER_CA_CERT_PATH/_DATA, TEMPORAL_TLS_SERVER_NAME and TEMPORAL_GRPC_META_*.
 * With none of them set, the result is what the processes always used: plain gRPC to 127.0.0.1:7233, namespace default.
 *
 * Only types come from the SDK packages here: the API process never loads the worker's native bridge through us.
 */
import * as fs from 'node:fs';
import { loadClientConfigProfile, toClientOptions } from '@temporalio/envconfig';
import type { ConnectionOptions } from '@temporalio/client';
import type { NativeConnectionOptions } from '@temporalio/worker';

export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';
export const DEFAULT_TEMPORAL_NAMESPACE = 'default';

/** The options both `Connection.connect` (client) and `NativeConnection.connect` (worker) take. */
export type TemporalConnectionOptions = Pick<ConnectionOptions & NativeConnectionOptions, 'address' | 'tls' | 'apiKey' | 'metadata'> & { address: string };

export interface TemporalConnectionSettings {
  readonly connectionOptions: TemporalConnectionOptions;
  readonly namespace: string;
  /** What was configured, without secrets, for a start-up log line. */
  readonly summary: TemporalConnectionSummary;
}

export interface TemporalConnectionSummary {
  readonly address: string;
  readonly namespace: string;
  /** `off`, `tls` (server verified), or `mtls` (with a client certificate). */
  readonly tls: 'off' | 'tls' | 'mtls';
  readonly apiKey: boolean;
  /** The TOML profile asked for (TEMPORAL_PROFILE), or undefined for the file's "default" profile when there is a file. */
  readonly profile: string | undefined;
}

export interface TemporalConnectionSources {
  /** The variables to read; process.env by default (tests pass their own). */
  readonly env?: Record<string, string | undefined>;
  /** Overrides TEMPORAL_PROFILE. */
  readonly profile?: string;
}

/** A configuration that cannot work, with a message that says which variable or profile key to fix. */
export class TemporalConfigError extends Error {
  override readonly name = 'TemporalConfigError';
}

/** Reads the connection settings (TOML profile, then TEMPORAL_* variables), checks them, and fills in the defaults. */
export function temporalConnectionFromEnv(sources: TemporalConnectionSources = {}): TemporalConnectionSettings {
  const env = definedOnly(sources.env ?? process.env);
  const configFile = env.TEMPORAL_CONFIG_FILE;
  // envconfig treats a missing file as "no file"; a file someone named explicitly must exist.
  if (configFile !== undefined && !fs.existsSync(configFile)) {
    throw new TemporalConfigError(`TEMPORAL_CONFIG_FILE names ${configFile}, which does not exist`);
  }
  let profile;
  try {
    profile = loadClientConfigProfile({ profile: sources.profile, overrideEnvVars: env });
  } catch (error) {
    throw new TemporalConfigError(`cannot read the Temporal client configuration: ${(error as Error).message}`, { cause: error });
  }
  const tls = profile.tls;
  if (tls && !tls.disabled) {
    if (Boolean(tls.clientCert) !== Boolean(tls.clientKey)) {
      throw new TemporalConfigError(
        'a client certificate needs its key and a key its certificate: set both TEMPORAL_TLS_CLIENT_CERT_PATH (or _DATA) and ' +
          'TEMPORAL_TLS_CLIENT_KEY_PATH (or _DATA), or client_cert_* and client_key_* in the profile',
      );
    }
  }
  if (env.TEMPORAL_TLS_DISABLE_HOST_VERIFICATION === 'true' || env.TEMPORAL_TLS_DISABLE_HOST_VERIFICATION === '1') {
    // The TypeScript SDK cannot skip verification; refusing beats silently verifying what the user meant to skip.
    throw new TemporalConfigError('TEMPORAL_TLS_DISABLE_HOST_VERIFICATION is not supported: set TEMPORAL_TLS_SERVER_NAME to the name in the server certificate instead');
  }
  let connect;
  try {
    connect = toClientOptions(profile); // reads the certificate files named by *_PATH
  } catch (error) {
    throw new TemporalConfigError(`cannot load a TLS file of the Temporal configuration: ${(error as Error).message}`, { cause: error });
  }
  const { address, apiKey, tls: tlsOptions, metadata } = connect.connectionOptions;
  const connectionOptions: TemporalConnectionOptions = {
    address: address || DEFAULT_TEMPORAL_ADDRESS,
    ...(tlsOptions !== undefined ? { tls: tlsOptions } : {}),
    ...(apiKey ? { apiKey } : {}),
    ...(metadata && Object.keys(metadata).length ? { metadata } : {}),
  };
  const namespace = connect.namespace || DEFAULT_TEMPORAL_NAMESPACE;
  const tlsMode = !tlsOptions ? 'off' : typeof tlsOptions === 'object' && tlsOptions.clientCertPair ? 'mtls' : 'tls';
  return {
    connectionOptions,
    namespace,
    summary: { address: connectionOptions.address, namespace, tls: tlsMode, apiKey: Boolean(apiKey), profile: sources.profile ?? env.TEMPORAL_PROFILE },
  };
}

function definedOnly(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}
