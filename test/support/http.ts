import type { Express } from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are checked field by field in tests
export type Json = any;

export interface TestHttp {
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; json: Json; type: string }>;
  close(): Promise<void>;
}

/** Serves an app on a free 127.0.0.1 port and calls it over real HTTP. */
export async function serve(app: Express): Promise<TestHttp> {
  const server: Server = await new Promise((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    async call(method, path, body, headers = {}) {
      const response = await fetch(`${baseUrl}${path}`, {
        method,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      const text = await response.text();
      return { status: response.status, json: text ? JSON.parse(text) : null, type: response.headers.get('content-type') ?? '' };
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
