/**
 * The OpenAPI document without a database or Temporal: an app whose connections dial nothing until used (and
 * nothing here uses them), so `npm run openapi` and the staleness test can build the document anywhere.
 */
import { Client, Connection } from '@temporalio/client';
import type { Express } from 'express';
import { createApp } from './app';
import { buildOpenApiDocument, OpenApiDocument } from './openapi';
import { describeRoutes } from './route-declarations';
import { createDatabase } from '../store/database';

/** The app with every route, connected to nothing: serves /openapi.json and /docs, and any public static file. */
export function offlineApp(): { app: Express; close(): Promise<void> } {
  const db = createDatabase('postgres://offline.invalid:1/none', 1);
  const connection = Connection.lazy({ address: '127.0.0.1:1' });
  const app = createApp({ db, temporal: new Client({ connection }), rateLimit: false, log: () => undefined });
  return {
    app,
    close: async () => {
      await connection.close();
      await db.destroy();
    },
  };
}

export async function offlineOpenApiDocument(): Promise<OpenApiDocument> {
  const { app, close } = offlineApp();
  try {
    return buildOpenApiDocument(describeRoutes(app));
  } finally {
    await close();
  }
}

/** The committed file's text: stable key order as built, two-space indent, trailing newline. */
export function openApiJsonText(document: OpenApiDocument): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}
