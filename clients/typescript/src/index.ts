/**
 * The meterloop API client: typed from the API's OpenAPI document (src/schema.ts, generated) by openapi-fetch.
 *
 *   const meterloop = createMeterloopClient({ baseUrl: 'http://localhost:3000', apiKey: process.env.METERLOOP_API_KEY });
 *   const { data, error } = await meterloop.POST('/v1/customers', { body: { external_id: 'acme', name: 'Acme', currency: 'USD' } });
 *
 * Paths, parameters, bodies and answers are checked by the compiler; `error` is the API's problem document
 * (`error.code` is the stable code). POSTs carry an Idempotency-Key (one per call, reused by its retries), and
 * 503/429 answers are retried as their Retry-After asks (see src/retrying-fetch.ts).
 */
import createClient, { type Client, type ClientOptions } from 'openapi-fetch';
import type { components, operations, paths } from './schema';
import { retryingFetch, type RetryingFetchOptions } from './retrying-fetch';

export type { components, operations, paths };
export { retryAfterMs, retryingFetch, type RetryOptions, type RetryingFetchOptions } from './retrying-fetch';

/** A schema of the document by name, e.g. `Schema<'InvoiceResponse'>`. */
export type Schema<Name extends keyof components['schemas']> = components['schemas'][Name];
/** The API's error document (RFC 9457 problem details with a stable `code`). */
export type Problem = Schema<'ProblemResponse'>;

export interface MeterloopClientOptions extends RetryingFetchOptions {
  /** Where the API listens, e.g. `http://localhost:3000`. */
  readonly baseUrl: string;
  /** An API key or a customer usage token, sent as `Authorization: Bearer <key>`. */
  readonly apiKey?: string;
  /** Headers sent with every request. */
  readonly headers?: Record<string, string>;
}

export type MeterloopClient = Client<paths>;

export function createMeterloopClient(options: MeterloopClientOptions): MeterloopClient {
  const clientOptions: ClientOptions = {
    baseUrl: options.baseUrl.replace(/\/$/, ''),
    headers: { ...options.headers, ...(options.apiKey ? { Authorization: `Bearer ${options.apiKey}` } : {}) },
    fetch: retryingFetch(options),
  };
  return createClient<paths>(clientOptions);
}
