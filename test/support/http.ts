import type { Express } from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { openApiDocument } from '../../api/openapi';
import { contractFor } from './openapi-contract';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are checked field by field in tests
export type Json = any;

export interface TestResponse {
  status: number;
  /** The parsed body of a JSON response (null otherwise). */
  json: Json;
  type: string;
  headers: Headers;
  text: string;
}

export interface TestHttp {
  /** `headers` are merged over the defaults given to serve(); an empty value removes a default. */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<TestResponse>;
  readonly baseUrl: string;
  close(): Promise<void>;
}

export interface ServeOptions {
  /** Sent with every call, e.g. `{ authorization: 'Bearer <key>' }` (see createTestApiKey in ./api-keys). */
  readonly headers?: Record<string, string>;
  /**
   * Every response is checked against the app's OpenAPI document (./openapi-contract.ts) and a call throws when it
   * breaks it. Only a test that sends what the contract cannot describe turns this off.
   */
  readonly checkContract?: boolean;
}

/** Serves an app on a free 127.0.0.1 port and calls it over real HTTP. */
export async function serve(app: Express, options: ServeOptions = {}): Promise<TestHttp> {
  const server: Server = await new Promise((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const contract = options.checkContract === false ? undefined : contractFor(openApiDocument(app));
  return {
    baseUrl,
    async call(method, path, body, headers = {}) {
      const merged = Object.fromEntries(
        Object.entries({ ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers, ...headers }).filter(([, value]) => value !== ''),
      );
      const response = await fetch(`${baseUrl}${path}`, {
        method,
        headers: merged,
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      const text = await response.text();
      const type = response.headers.get('content-type') ?? '';
      const json = text && type.includes('json') ? JSON.parse(text) : null;
      contract?.assert({ method, url: path, status: response.status, contentType: type, json });
      return { status: response.status, json, type, headers: response.headers, text };
    },
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
